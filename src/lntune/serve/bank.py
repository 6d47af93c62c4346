"""SkinBank: one base model, many LN skins, and batches whose rows belong to different skins.

    bank = SkinBank("minilm")
    bank.add_skin("sst2", "runs/sst2-ln")
    bank.add_skin("mrpc", "runs/mrpc-ln")
    bank.predict([("sst2", "a charming film"), ("mrpc", ("He left.", "He went away."))])

Skins can be added and removed while other threads predict or generate: the bank lock guards the skins and
their tables for the milliseconds of an add, the forward lock runs one batch at a time, and the row of a
removed skin is reused only once no batch in flight reads it. Reading and checking skin files: skins.py.
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lntune.data.encode import collate
from lntune.errors import BadInput, DataError, InputTooLong, LntuneError, SkinError
from lntune.heads import HEADS, get_head
from lntune.heads.base import check_unicode
from lntune.model import LoadedModel, load_model
from lntune.model.fingerprint import fingerprint
from lntune.serve import BATCH_SIZE, BATCH_TOKENS, heads, mixed
from lntune.serve.generate import generate_rows, Generated, OnText, OnToken, RowText, Sampling
from lntune.serve.skins import Skin, norm_bases, read_ln_skin
from lntune.serve.tables import PackedTable, SlotTable, release_free_memory
from lntune.data.chat import check_messages
from lntune.heads.chat import render

BASE = "base"  # the name under which generation uses the base model itself (slot 0)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# An input of more than max_tokens * CHARS_PER_TOKEN characters is refused untokenised: tokenising
# costs time in the characters (1 MB: about a second, under the tokenizer's lock), even when only
# max_tokens + 1 tokens are kept. Natural text has 3-6 characters a token, so none is refused wrongly.
CHARS_PER_TOKEN = 32


class UnknownSkin(LntuneError):
    """A request names a skin the bank does not hold."""


class SkinExists(LntuneError):
    """add_skin under a name that is taken."""


@dataclass
class _HeadTables:
    """The per-skin tables of one head Linear (widths differ between skins, so heads are not packed)."""

    module: heads.MixedLinear
    weight: SlotTable
    bias: SlotTable | None


def _table(base: torch.Tensor | None) -> SlotTable | None:
    return None if base is None else SlotTable(base)


def _base(norm: mixed.MixedNorm, attr: str) -> torch.Tensor | None:
    return norm.base_gain if attr == "weight" else norm.base_bias


class SkinBank:
    """One base model and the skins served on it; thread-safe."""

    def __init__(self, model: str | LoadedModel = "minilm", *, dtype: str = "float32", max_tokens: int | None = None,
                 batch_size: int = BATCH_SIZE, batch_tokens: int = BATCH_TOKENS, norm_map: dict | None = None,
                 device: str = "cpu", head: str = "classification") -> None:
        """`head`: the kind of skins served: classification and regression (one model answers both), or
        causal-lm (generation); a LoadedModel brings its own. `batch_size` and `batch_tokens`: inputs and padded
        tokens per predict pass (at least one input)."""
        for option, value in (("batch_size", batch_size), ("batch_tokens", batch_tokens), ("max_tokens", max_tokens)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise LntuneError(f"{option} {value!r}: give a whole number >= 1")
        if dtype != "float32":
            # load_skin computes tuned norms of low-precision models in float32 and untuned ones in
            # the model's dtype; mixing skins per row cannot follow both, so exactness would be lost.
            raise LntuneError(f"dtype {dtype}: mixed serving runs float32 models only; use --dtype float32")
        if isinstance(model, LoadedModel) and fingerprint(model.base_parameters()) != model.fingerprint:
            raise LntuneError(f"{model.model_id}: its weights changed since loading (a skin applied?); "
                              "give SkinBank a freshly loaded model")
        if not isinstance(model, LoadedModel) and head not in HEADS:
            raise LntuneError(f"head {head!r}: a bank serves {', '.join(HEADS)} skins")
        self.lm = model if isinstance(model, LoadedModel) else load_model(model, head, 2, dtype, norm_map)
        self.device = torch.device(device)
        self.lm.model.eval().to(self.device)  # before install: the base copies live where the model does
        limit = _max_positions(self.lm.model.config)
        if max_tokens is not None and limit is not None and max_tokens > limit:
            raise LntuneError(f"--max-tokens {max_tokens}: the model reads at most {limit} positions")
        self.max_tokens = max_tokens or limit or 512
        self.batch_size, self.batch_tokens = batch_size, batch_tokens
        self.route = mixed.Route()
        self.norms = mixed.install(self.lm.norms, self.route)
        self.heads = heads.install(self.lm.model, self.lm.head_names, self.route)
        self._parts = [(m, a) for m in self.norms for a in ("weight", "bias") if _base(m, a) is not None]
        self._part_names = [f"{m.name}.{a}" for m, a in self._parts]
        self._bases = norm_bases(self.lm)
        self._norm_table = PackedTable([_base(m, a) for m, a in self._parts])
        self._head_tables = [_HeadTables(m, SlotTable(m.base_weight), _table(m.base_bias)) for m in self.heads]
        self._show_norm_tables()
        self._skins: dict[str, Skin] = {}
        self._slots: dict[str, int] = {}
        # A removed (or replaced) skin's row is reused only once no batch in flight reads it: batches hold the
        # forward lock, not the bank lock, so skins come and go in milliseconds while a generation runs.
        self._free: list[int] = []
        self._busy: Counter[int] = Counter()  # slot -> batches in flight that read it
        self._retired: set[int] = set()  # rows of removed skins that batches in flight still read
        self._next_slot = 1
        self._lock = threading.RLock()  # skins, slots and tables
        self._forward = threading.Lock()  # the model and the route: one batch at a time
        self._tok_lock = threading.Lock()

    # --- skins -------------------------------------------------------------------------------------

    @property
    def generates(self) -> bool:
        return get_head(self.lm.head).generates

    def add_skin(self, name: str, path: str | Path, replace: bool = False) -> dict:
        """Load the skin at `path` under `name`; refuses non-LN skins and skins of another base."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise BadInput(f"skin name {name!r}: use 1-64 letters, digits, '_', '.', '-', "
                           "starting with a letter or digit")
        if name == BASE:
            raise BadInput(f"skin name {BASE!r} is reserved: it names the base model without a skin")
        skin = read_ln_skin(self.lm, name, path, self._bases)  # outside the lock: predictions go on
        with self._lock:
            if name in self._skins and not replace:
                raise SkinExists(f"a skin named {name!r} is loaded already; remove it first or choose another name")
            slot = self._free.pop() if self._free else self._new_slot()
            self._write(slot, skin)  # a fresh row: batches in flight read other rows
            if name in self._slots:
                self._retire(self._slots[name])
            self._skins[name], self._slots[name] = skin, slot
        return skin.info()

    def remove_skin(self, name: str) -> None:
        with self._lock:
            if name not in self._skins:
                raise self._unknown(name)
            del self._skins[name]
            self._retire(self._slots.pop(name))

    def _new_slot(self) -> int:
        self._next_slot += 1
        return self._next_slot - 1

    def _retire(self, slot: int) -> None:
        if self._busy[slot]:
            self._retired.add(slot)
        else:
            self._free.append(slot)

    def _reserve(self, names: list[str], allow_base: bool = False) -> tuple[list[int], list[Skin | None]]:
        """The rows of `names` (base: row 0), kept from reuse until `_release`."""
        with self._lock:
            missing = [n for n in names if n not in self._skins and not (allow_base and n == BASE)]
            if missing:
                raise self._unknown(missing[0])
            slots = [self._slots.get(n, 0) for n in names]
            self._busy.update(slots)
            return slots, [self._skins.get(n) for n in names]

    def _release(self, slots: list[int]) -> None:
        with self._lock:
            self._busy.subtract(slots)
            for slot in [s for s in self._retired if self._busy[s] <= 0]:
                self._retired.discard(slot)
                self._free.append(slot)
            self._busy += Counter()  # drops the zero counts

    def skins(self) -> list[dict]:
        with self._lock:
            return [s.info() for s in self._skins.values()]

    def __contains__(self, name: str) -> bool:
        return name in self._skins

    def __len__(self) -> int:
        return len(self._skins)

    def _unknown(self, name: str) -> UnknownSkin:
        have = ", ".join(sorted(self._skins)) or "none"
        return UnknownSkin(f"unknown task/skin {name!r}; loaded skins: {have}. Add it with POST /skins "
                           "(lntune serve --skin NAME=DIR, or bank.add_skin)")

    def _write(self, slot: int, skin: Skin) -> None:
        """The skin's values into row `slot` of every table; the tables then hold its only copy."""
        grew = self._norm_table.put(slot, [skin.norms.get(n) for n in self._part_names])
        if grew:
            self._show_norm_tables()
        for t in self._head_tables:
            values = {a: skin.heads.get(f"{t.module.name}.{a}") for a in ("weight", "bias")}
            grew |= t.weight.put(slot, values["weight"])
            if t.bias is not None:
                grew |= t.bias.put(slot, values["bias"])
            t.module.set_tables(t.weight.data, None if t.bias is None else t.bias.data)
        skin.norms, skin.heads = {}, {}
        if grew:
            release_free_memory()

    def _show_norm_tables(self) -> None:
        """Each norm reads its columns of the packed table (again after the table grew)."""
        views = dict(zip(self._parts, self._norm_table.views()))
        for m in self.norms:
            m.set_tables(views[m, "weight"], views.get((m, "bias")))

    def table_bytes(self) -> int:
        """Bytes the value tables hold (all slots, free ones included)."""
        return self._norm_table.nbytes() + sum(t.weight.nbytes() + (t.bias.nbytes() if t.bias is not None else 0)
                                               for t in self._head_tables)

    # --- inputs --------------------------------------------------------------------------------------

    @property
    def max_chars(self) -> int:
        return self.max_tokens * CHARS_PER_TOKEN

    def encode(self, texts: list) -> list[dict]:
        """Tokenise each text or (text, text_pair) as training did, refusing over-long inputs."""
        return [self.encode_text(i, t) for i, t in enumerate(texts)]

    def encode_text(self, i: int, t: object) -> dict:
        """Input `i`, a text or a (text, text_pair) pair, tokenised as training did."""
        a, b = (t if isinstance(t, (tuple, list)) and len(t) == 2 else (t, None)) if t is not None else (None, None)
        if not isinstance(a, str) or not (b is None or isinstance(b, str)):
            raise BadInput(f"input {i}: give a text (str) or a (text, text_pair) pair of str, not {type(t).__name__}")
        chars = len(a) + len(b or "")
        if chars > self.max_chars:  # refused before tokenising: its cost grows with the characters
            raise InputTooLong(f"input {i} has {chars} characters; this server reads at most {self.max_chars} "
                               f"characters and {self.max_tokens} tokens per input (text and text_pair together): "
                               "shorten or split it")
        for text in (a, b or ""):
            check_unicode(i, text)
        with self._tok_lock:  # fast tokenizers raise "Already borrowed" when shared by threads
            # max_tokens + 1 kept: enough to tell an over-long input, never a copy of a long one
            enc = self.lm.tokenizer(a, b, truncation=True, max_length=self.max_tokens + 1, verbose=False)
        if len(enc["input_ids"]) > self.max_tokens:
            raise InputTooLong(f"input {i} has more than {self.max_tokens} tokens; this server takes at most "
                               f"{self.max_tokens} per input (text and text_pair together): shorten or split it")
        return dict(enc)

    def collate(self, feats: list[dict]) -> dict[str, torch.Tensor]:
        return collate(feats, self.lm.tokenizer.pad_token_id)

    # --- forward -------------------------------------------------------------------------------------

    @torch.inference_mode()
    def logits(self, names: list[str], batch: dict[str, torch.Tensor],
               repeat: int = 1) -> list[tuple[Skin, torch.Tensor]]:
        """One forward pass; row i uses skin names[i]. Returns (skin, its logits) per row. `repeat`: model rows per
        input (a multiple-choice model reads each choice as a row)."""
        slots, skins = self._reserve(names)
        try:
            with self._forward:
                self.route.set([s for s in slots for _ in range(repeat)], self.device)
                try:
                    out = self.lm.model(**{k: v.to(self.device) for k, v in batch.items()}).logits.cpu()
                finally:
                    self.route.clear()
        finally:
            self._release(slots)
        return [(s, out[i] if repeat > 1 else out[i, ..., : s.outputs]) for i, s in enumerate(skins)]

    def predict(self, inputs: list[tuple[str, object]]) -> list[dict]:
        """`inputs`: (skin name, input) per row; one dict per row, in order. The input is a text or a (text,
        text_pair) pair for classification/regression skins, a text (split on whitespace) or a list of words for
        token-classification skins, {"question", "choices"[, "context"]} for multiple-choice skins."""
        rows = self.prepare_rows(inputs)
        while rows.todo:
            self.forward_rows(next_pass([rows], self.batch_size, self.batch_tokens))
            if rows.error is not None:
                raise rows.error
        return rows.out

    def prepare_rows(self, inputs: list[tuple[str, object]]) -> Rows:
        """Check `inputs` (as `predict` takes them) and tokenise them: bad input fails here, before any pass."""
        if self.generates:
            raise BadInput("this server serves causal-LM skins, which generate text: use /v1/completions or "
                           "/v1/chat/completions (SkinBank.generate)")
        if not inputs:
            raise BadInput("no inputs: give at least one (skin name, text) pair")
        for i, item in enumerate(inputs):
            if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str):
                raise BadInput(f"input {i}: expected (skin name, input), got {item!r:.80}")
        with self._lock:  # fail fast on unknown names and misfit inputs, before tokenising
            for i, (name, text) in enumerate(inputs):
                if name not in self._skins:
                    raise self._unknown(name)
                skin = self._skins[name]
                get_head(skin.head).check_input(i, skin, text)
        feats, extras = map(list, zip(*(get_head(self._skins[n].head).serve_encode(i, t, self)
                                        for i, (n, t) in enumerate(inputs))))
        return Rows([n for n, _ in inputs], feats, extras)

    def forward_rows(self, picks: list[tuple[Rows, int]]) -> None:
        """One forward pass over `picks` (rows of one or more Rows, all with one number of choices, as
        `next_pass` chooses them); each answer goes to its Rows' `out`. An output that cannot be answered (NaN)
        fails only the Rows it belongs to (its `error`); a pass that cannot run (a skin removed) raises."""
        names = [rows.names[i] for rows, i in picks]
        feats = [rows.feats[i] for rows, i in picks]
        for (rows, i), (skin, logits) in zip(picks, self.logits(names, self.collate(feats), _choices(feats[0]))):
            try:
                rows.out[i] = _answer(skin, logits, rows.extras[i])
            except LntuneError as e:
                rows.error = rows.error or e

    def with_tokenizer(self, fn, *args):
        """fn(*args, tokenizer) under the tokenizer's lock (fast tokenizers raise "Already borrowed" when shared)."""
        with self._tok_lock:
            return fn(*args, self.lm.tokenizer)

    def tokens(self, i: int, *args, **kwargs) -> dict:
        """The tokenizer's encoding of input `i`, refused when any sequence has more than max_tokens tokens."""
        with self._tok_lock:
            enc = self.lm.tokenizer(*args, truncation=True, max_length=self.max_tokens + 1, verbose=False, **kwargs)
        ids = enc["input_ids"]
        if max((len(r) for r in ids), default=0) > self.max_tokens if ids and isinstance(ids[0], list) \
                else len(ids) > self.max_tokens:
            raise InputTooLong(f"input {i} has more than {self.max_tokens} tokens; this server takes at most "
                               f"{self.max_tokens} per input: shorten or split it")
        return enc

    # --- generation ----------------------------------------------------------------------------------

    def prompt_ids(self, i: int, prompt: object) -> list[int]:
        """A prompt's token ids, encoded as training encodes prompts; a list of chat messages is rendered with
        the tokenizer's chat template, ending with the assistant's header."""
        try:
            if isinstance(prompt, list):
                prompt = render(self.lm.tokenizer, check_messages(prompt, f"input {i}", answered=False), True)
        except DataError as e:
            raise BadInput(str(e)) from None
        if not isinstance(prompt, str):
            raise BadInput(f"input {i}: give a prompt (str) or chat messages, not {type(prompt).__name__}")
        if len(prompt) > self.max_chars:
            raise InputTooLong(f"input {i} has {len(prompt)} characters; this server reads at most {self.max_chars}")
        check_unicode(i, prompt)
        with self._tok_lock:
            ids = self.lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            raise BadInput(f"input {i}: the prompt is empty; give at least one token to continue")
        return ids

    def generate(self, requests: list[tuple[str, object, Sampling]], on_token: OnToken | None = None,
                 keep_logits: bool = False, on_text: OnText | None = None) -> list[Generated]:
        """`requests`: (skin name or "base", prompt text or chat messages, Sampling) per row; rows of different
        skins share batches. `on_token(row, token_id)` is called as each row's tokens are chosen (return False
        to stop that row), `on_text(row, piece)` with each piece of its text that is safe to show (see
        RowText). A row ends at EOS, at its max_tokens, or where one of its stop strings first appears."""
        prompts = self.prepare(requests)
        texts = [RowText(self.lm.tokenizer, s.stop) for _, _, s in requests]
        follow = on_text is not None or any(s.stop for _, _, s in requests)  # else decode once, at the end

        def hook(row: int, token: int) -> bool | None:
            if follow and (piece := texts[row].push(token)) and on_text is not None:
                on_text(row, piece)
            go = None if on_token is None else on_token(row, token)
            return False if texts[row].stopped else go

        out = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            slots, _ = self._reserve([n for n, _, _ in chunk], allow_base=True)  # a skin may be gone since
            try:
                with self._forward:
                    self.route.set(slots, self.device)
                    try:
                        out += generate_rows(self.lm.model, prompts[start : start + len(chunk)],
                                             [s for _, _, s in chunk], self.eos_ids, self.lm.tokenizer.pad_token_id,
                                             lambda row, token, start=start: hook(start + row, token), keep_logits)
                    finally:
                        self.route.clear()
            finally:
                self._release(slots)
            for row in range(start, len(out)):  # this chunk's rows are done: their last text, their reason
                g, text = out[row], texts[row]
                g.finish_reason = "stop" if text.stopped else g.finish_reason
                g.text = text.text if follow else self.decode(g.tokens)
                if on_text is not None and (rest := text.flush()):
                    on_text(row, rest)
        return out

    def prepare(self, requests: list[tuple[str, object, Sampling]]) -> list[list[int]]:
        """Check generation requests (skins known, settings in range, prompts fit) and tokenise their prompts."""
        if not self.generates:
            raise BadInput("this server serves classification/regression skins: use /predict (SkinBank.predict)")
        if not requests:
            raise BadInput("no inputs: give at least one (skin name, prompt, sampling)")
        prompts = []
        for i, (name, prompt, sampling) in enumerate(requests):
            if name != BASE and name not in self._skins:
                raise self._unknown(name)
            try:
                sampling.check(f"input {i}")
            except LntuneError as e:
                raise BadInput(str(e)) from None
            ids = self.prompt_ids(i, prompt)
            if len(ids) + sampling.max_tokens > self.max_tokens:
                raise InputTooLong(f"input {i}: {len(ids)} prompt tokens + max_tokens {sampling.max_tokens} exceed the "
                                   f"{self.max_tokens} positions this server reads; shorten the prompt or ask for "
                                   "fewer tokens")
            prompts.append(ids)
        return prompts

    @property
    def eos_ids(self) -> set[int]:
        ids = {self.lm.tokenizer.eos_token_id}
        extra = getattr(getattr(self.lm.model, "generation_config", None), "eos_token_id", None)
        ids |= set(extra) if isinstance(extra, (list, tuple)) else {extra}
        return {i for i in ids if isinstance(i, int)}

    def decode(self, tokens: list[int]) -> str:
        return self.lm.tokenizer.decode(tokens, skip_special_tokens=True)


def _answer(skin: Skin, logits: torch.Tensor, extra: object) -> dict:
    if not bool(torch.isfinite(logits).all()):  # finite skins can still overflow; JSON has no NaN
        raise SkinError(f"skin {skin.name!r} gives NaN or infinite outputs for this input; the skin is broken, "
                        "remove it (DELETE /skins) and train it again")
    return get_head(skin.head).answer(skin, logits, extra)


@dataclass(eq=False)
class Rows:
    """One predict call's inputs, checked and tokenised: forward passes take their rows from it, in order."""

    names: list[str]  # skin per row
    feats: list[dict]  # tokenised inputs
    extras: list  # what each head needs to answer (the words of a token-classification input, ...)
    todo: list[int] = field(init=False)  # rows not yet run: by number of choices, then length (less padding)
    out: list[dict | None] = field(init=False)
    error: BaseException | None = None  # an answer or its pass failed: the call fails with it

    def __post_init__(self) -> None:
        self.todo = sorted(range(len(self.feats)), key=lambda i: (_choices(self.feats[i]), _length(self.feats[i])))
        self.out = [None] * len(self.feats)


def next_pass(calls: list[Rows], batch_size: int, batch_tokens: int) -> list[tuple[Rows, int]]:
    """The rows of the next forward pass: one row from each call in turn (so a small call beside a large one
    waits one pass, not the large one's whole run), while the pass holds at most `batch_size` inputs and
    `batch_tokens` padded tokens (at least one input). A pass holds inputs with one number of choices: the
    first call's next one's."""
    first = next(c for c in calls if c.todo)
    choices = _choices(first.feats[first.todo[0]])
    picks: list[tuple[Rows, int]] = []
    width, added = 0, True
    while added and len(picks) < batch_size:
        added = False
        for call in calls:
            if not call.todo or len(picks) == batch_size or _choices(call.feats[call.todo[0]]) != choices:
                continue
            wider = max(width, _length(call.feats[call.todo[0]]))
            if picks and (len(picks) + 1) * choices * wider > batch_tokens:
                continue
            picks.append((call, call.todo.pop(0)))
            width, added = wider, True
    return picks


def _length(feats: dict) -> int:
    """Tokens of an input's longest sequence (its width once padded)."""
    ids = feats["input_ids"]
    return max(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids)


def _choices(feats: dict) -> int:
    """Sequences per input: its number of choices when it holds several, else 1."""
    ids = feats["input_ids"]
    return len(ids) if ids and isinstance(ids[0], list) else 1


def _max_positions(config) -> int | None:
    for key in ("max_position_embeddings", "n_positions"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    return None
