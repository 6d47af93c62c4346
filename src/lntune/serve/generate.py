"""Batched generation in which every row wears its own LN skin, in prefill and in every decoding step.

The bank's Route holds one slot per row for the whole generation: the KV cache keeps the rows in place,
so each decoding step's norms gather the same per-row gains. Prompts are left-padded and the position
ids count real tokens only, so a row's tokens do not depend on its batch-mates. Rows stop on their own
(at an end-of-sequence token or their own max_tokens); a finished row is fed padding until the batch
ends, which costs a little compute and keeps the cache aligned.

transformers' generate() takes one set of sampling settings and one random generator for the whole
batch; here each row has its own temperature, top-p and seeded generator, so a row samples the same
tokens whatever it is batched with. That loop is short enough to write here.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch

from lntune.errors import LntuneError

# (row, token id), called as soon as a row's token is chosen; returning False stops that row (its reader went
# away), so an abandoned stream does not hold its batch-mates to the end of its max_tokens
OnToken = Callable[[int, int], "bool | None"]
OnText = Callable[[int, str], None]  # (row, piece of its answer's text), as soon as the piece is safe to show
MAX_STOPS = 4  # as OpenAI's API


def stops_ok(stops: tuple | list) -> bool:
    """The one rule for stop strings (Sampling.check, the /v1 schema): at most MAX_STOPS, each non-empty."""
    return len(stops) <= MAX_STOPS and all(isinstance(x, str) and x for x in stops)


@dataclass(frozen=True)
class Limit:
    """The range one sampling field accepts: Sampling.check and the /v1 schema (serve/openai.py) both read it."""

    lo: float
    hi: float
    lo_open: bool = False  # lo itself is refused

    def ok(self, v) -> bool:
        return (v > self.lo if self.lo_open else v >= self.lo) and v <= self.hi

    def text(self) -> str:
        lo, hi = (f"{x:,}" if isinstance(x, int) else f"{x:g}" for x in (self.lo, self.hi))
        return f"{'above' if self.lo_open else 'from'} {lo} {'and at most' if self.lo_open else 'to'} {hi}"


# One range per field, as in OpenAI's API (temperature 0-2). Each entry point keeps its own default:
# Sampling and `lntune ask` are greedy (temperature 0), /v1 samples at 1.0 as OpenAI's API does.
LIMITS = {"max_tokens": Limit(1, 100_000), "temperature": Limit(0.0, 2.0), "top_p": Limit(0.0, 1.0, lo_open=True),
          "seed": Limit(0, 2**63 - 1)}


@dataclass(frozen=True)
class Sampling:
    """How one row picks its tokens (ranges: LIMITS)."""

    max_tokens: int = 16  # new tokens at most
    temperature: float = 0.0  # 0: greedy (argmax)
    top_p: float = 1.0  # nucleus: sample among the smallest set of tokens holding this much probability
    seed: int | None = None  # a seeded row samples the same tokens in any batch
    ignore_eos: bool = False  # generate max_tokens whatever comes (benchmarks: every row the same length)
    stop: tuple[str, ...] = ()  # strings that end the answer where they first appear (left out of its text)

    def check(self, where: str) -> "Sampling":
        if not isinstance(self.max_tokens, int) or not LIMITS["max_tokens"].ok(self.max_tokens):
            raise LntuneError(f"{where}: max_tokens {self.max_tokens!r}; give a whole number "
                              f"{LIMITS['max_tokens'].text()}")
        if not isinstance(self.temperature, (int, float)) or not LIMITS["temperature"].ok(self.temperature):
            raise LntuneError(f"{where}: temperature {self.temperature!r}; give a number "
                              f"{LIMITS['temperature'].text()} (0: greedy)")
        if not isinstance(self.top_p, (int, float)) or not LIMITS["top_p"].ok(self.top_p):
            raise LntuneError(f"{where}: top_p {self.top_p!r}; give a number {LIMITS['top_p'].text()}")
        if self.seed is not None and (not isinstance(self.seed, int) or not LIMITS["seed"].ok(self.seed)):
            raise LntuneError(f"{where}: seed {self.seed!r}; give a whole number {LIMITS['seed'].text()}")
        if not isinstance(self.stop, tuple) or not stops_ok(self.stop):
            raise LntuneError(f"{where}: stop {self.stop!r}; give at most {MAX_STOPS} non-empty strings")
        return self


@dataclass
class Generated:
    """One row's result."""

    tokens: list[int] = field(default_factory=list)
    finish_reason: str = "length"  # "stop": EOS or a stop string; "length": max_tokens; "cancelled": on_token said so
    prompt_tokens: int = 0
    text: str = ""  # the tokens as text, cut before a stop string (SkinBank.generate fills it)
    logits: torch.Tensor | None = None  # the prefill's next-token logits, when asked for (exactness checks)


def left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input ids, attention mask and position ids (counting real tokens only) of left-padded rows."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _pick(logits: torch.Tensor, s: Sampling, generator: torch.Generator | None) -> int:
    if s.temperature == 0.0:
        return int(logits.argmax())
    probs = torch.softmax(logits.double() / s.temperature, -1)
    if s.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < s.top_p  # the top token is always kept
        probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.inference_mode()
def generate_rows(model, prompts: list[list[int]], sampling: list[Sampling], eos: set[int], pad: int,
                  on_token: OnToken | None = None, keep_logits: bool = False) -> list[Generated]:
    """Generate for each prompt (token ids) with its own settings; the caller has routed the rows' skins."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids, mask, pos = (t.to(device) for t in left_pad(prompts, pad))
    gens = [torch.Generator().manual_seed(s.seed) if s.seed is not None else None for s in sampling]
    out = [Generated(prompt_tokens=len(p)) for p in prompts]
    live = [True] * len(prompts)
    # transformers renamed past_key_values to cache (5.x); older forwards take only the old name
    kv = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    cache = {kv: DynamicCache()}
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                   **cache).logits[:, -1].float().cpu()
    if keep_logits:
        for row, g in zip(logits, out):
            g.logits = row.clone()
    for _ in range(max(s.max_tokens for s in sampling)):
        step = []
        for i, (row, s) in enumerate(zip(logits, sampling)):
            if not live[i]:
                step.append(pad)
                continue
            token = _pick(row, s, gens[i])
            step.append(token)
            if token in eos and not s.ignore_eos:
                out[i].finish_reason, live[i] = "stop", False
                continue
            out[i].tokens.append(token)
            if on_token is not None and on_token(i, token) is False:
                out[i].finish_reason, live[i] = "cancelled", False
            elif len(out[i].tokens) >= s.max_tokens:
                live[i] = False
        if not any(live):
            break
        mask = torch.cat([mask, mask.new_ones(len(prompts), 1)], 1)
        pos = pos[:, -1:] + 1
        logits = model(input_ids=torch.tensor(step, device=device)[:, None], attention_mask=mask, position_ids=pos,
                       use_cache=True, **cache).logits[:, -1].float().cpu()
    return out


class RowText:
    """One row's answer as text while its tokens come. `push` returns the new piece that is safe to show: never
    half of a multi-byte character, never text that a stop string might still claim (a tail that begins one
    is held back until the next tokens settle it). When a stop string appears, the text ends before it and
    `stopped` is set. Stop strings are matched on the decoded text, not on tokens, because a string may span
    tokens or end inside one: the same reason OpenAI's API and vLLM match them on text."""

    def __init__(self, tokenizer, stop: tuple[str, ...] = ()) -> None:
        self.tokenizer, self.stop = tokenizer, stop
        self.ids: list[int] = []
        self.text, self.sent, self.stopped = "", 0, False

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        hits = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        if hits:
            self.text, self.stopped = text[: min(hits)], True
            return self.flush()
        self.text = text
        safe = len(text.rstrip("\ufffd"))  # a character still missing its last bytes
        safe = min(safe, len(text) - _held(text, self.stop))
        piece = text[self.sent : max(safe, self.sent)]
        self.sent = max(safe, self.sent)
        return piece

    def flush(self) -> str:
        """What is left to show once the row has ended."""
        piece, self.sent = self.text[self.sent :], len(self.text)
        return piece


def _held(text: str, stops: tuple[str, ...]) -> int:
    """The length of the longest tail of `text` that begins some stop string."""
    return max((k for s in stops for k in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:k])),
               default=0)
