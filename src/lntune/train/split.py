"""Where a model's frozen bottom ends, found by tracing forward passes of two small probe batches.

The lowest trainable module is the first module, in call order, that owns a trainable tensor
(an LN of layer k, an adapter on an upper block, a LoRA factor, the head...). Everything that runs
before it, other than its ancestors, is frozen: with `frozen_bottom="eval"` it runs in eval mode
(no dropout), which makes its output a deterministic function of the example, so it can be cached.

The cache stores the first input of a *site*: the lowest trainable module itself when that input
feeds nothing else (BERT's post-attention LayerNorm: the whole attention sub-block below it is
skipped), else the block holding it (pre-LN blocks, whose input also feeds the residual). A site is
accepted only if serving it from a copy reproduces the model's outputs on two probe batches of
different shapes, with the padded positions zeroed as the cache stores them."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from lntune.heads import IGNORE

ROWS, WIDTH = "R", "T"  # symbolic batch dimensions of a recorded output shape


@dataclass
class Split:
    lowest: str  # the first module in call order that owns a trainable tensor
    bottom: tuple[str, ...]  # modules run before it (not its ancestors): all frozen
    site: str | None = None  # module whose first input the cache stores; None: no cache possible
    granularity: str | None = None  # "module" (the lowest trainable module) or "block"
    skip: dict[str, object] = field(default_factory=dict)  # module -> output template, replaced by zeros when cached
    skipped_params: int = 0  # frozen non-embedding parameters the cache saves computing
    state_dim: int = 0  # last dimension of the cached input
    state_dtype: torch.dtype = torch.float32
    reason: str = ""  # why no site was found

    @property
    def worthwhile(self) -> bool:
        return self.site is not None and self.skipped_params > 0


@dataclass
class _Trace:
    clock: int = 0  # ticks at every module entry and exit
    first: dict[str, int] = field(default_factory=dict)  # tick of a module's first entry
    done: dict[str, int] = field(default_factory=dict)  # tick of its last exit
    count: dict[str, int] = field(default_factory=dict)  # calls
    inputs: dict[str, object] = field(default_factory=dict)  # first input of the first call
    outputs: dict[str, object] = field(default_factory=dict)  # template of the first output (None: unsupported)

    def calls(self, name: str) -> int:
        return self.count.get(name, 0)

    def done_before(self, name: str) -> list[str]:
        """Modules whose every call has returned before `name` is first called (in call order)."""
        start = self.first[name]
        return [n for n in self.first if self.done.get(n, start) < start]


def first_input(args: tuple, kwargs: dict):
    if args:
        return args[0]
    return kwargs.get("hidden_states", next(iter(kwargs.values()), None))


def _replace_first(args: tuple, kwargs: dict, value) -> tuple[tuple, dict]:
    if args:
        return (value, *args[1:]), kwargs
    key = "hidden_states" if "hidden_states" in kwargs else next(iter(kwargs))
    return args, {**kwargs, key: value}


@torch.no_grad()
def _trace(model: nn.Module, batch: dict) -> tuple[_Trace, object]:
    trace, handles = _Trace(), []
    rows, width = batch_shape(batch)

    def pre(name):
        def hook(_, args, kwargs):
            trace.clock += 1
            trace.count[name] = trace.count.get(name, 0) + 1
            if name not in trace.first:
                trace.first[name] = trace.clock
                trace.inputs[name] = first_input(args, kwargs)

        return hook

    def post(name):
        # registered last, so it runs after the hooks methods attach (adapters, LoRA): a module
        # whose hook calls a trainable module has not returned before that module runs
        def hook(_, args, kwargs, out):
            trace.clock += 1
            trace.done[name] = trace.clock
            if name not in trace.outputs:  # the structure only: holding every output would cost memory
                try:
                    trace.outputs[name] = ("ok", _template(out, rows, width))
                except ValueError:
                    trace.outputs[name] = None

        return hook

    for name, mod in model.named_modules():
        handles.append(mod.register_forward_pre_hook(pre(name), with_kwargs=True))
        handles.append(mod.register_forward_hook(post(name), with_kwargs=True))
    try:
        out = model(**batch)
    finally:
        for h in handles:
            h.remove()
    return trace, out


def _template(out, rows: int, width: int):
    """Output structure with the batch dimensions made symbolic; raises ValueError if unsupported."""
    if out is None:
        return None
    if torch.is_tensor(out):
        dims = tuple(ROWS if i == 0 and d == rows else WIDTH if i in (0, 1) and d == width else d
                     for i, d in enumerate(out.shape))
        return (dims, out.dtype, out.device)
    if type(out) in (tuple, list):
        return tuple(_template(o, rows, width) for o in out)
    raise ValueError(type(out).__name__)


def zeros_like_template(template, rows: int, width: int):
    if template is None:
        return None
    if isinstance(template, tuple) and len(template) == 3 and isinstance(template[1], torch.dtype):
        dims, dtype, device = template
        shape = [rows if d == ROWS else width if d == WIDTH else d for d in dims]
        return torch.zeros(shape, dtype=dtype, device=device)
    return tuple(zeros_like_template(t, rows, width) for t in template)


def _ancestors(name: str) -> set[str]:
    parts = name.split(".") if name else []
    return {".".join(parts[:i]) for i in range(len(parts))}


def _maximal(names: list[str]) -> list[str]:
    chosen = set(names)
    return [n for n in names if not (_ancestors(n) & chosen)]


def _block_of(name: str, blocks: str) -> str | None:
    if blocks and name.startswith(blocks + "."):
        return ".".join(name.split(".")[: len(blocks.split(".")) + 1])
    return None


def batch_shape(batch: dict) -> tuple[int, int]:
    """(rows, width) of the model's hidden states: multiple-choice inputs are flattened to rows."""
    ids = batch["input_ids"]
    return ids.numel() // ids.shape[-1], ids.shape[-1]


def row_lengths(batch: dict) -> torch.Tensor:
    rows, width = batch_shape(batch)
    mask = batch.get("attention_mask")
    if mask is None:
        return torch.full((rows,), width, dtype=torch.long)
    return mask.reshape(rows, width).sum(-1).cpu()


def zero_padding(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    keep = torch.arange(states.shape[1], device=states.device)[None, :] < lengths.to(states.device)[:, None]
    return states * keep[..., None].to(states.dtype)


@contextlib.contextmanager
def serving(
    model: nn.Module,
    split: Split,
    states: Callable[[int, int], torch.Tensor | None],
    capture: Callable[[torch.Tensor], None] | None = None,
):
    """Inside: skipped modules return zeros and the site receives `states(rows, width)` as its first
    input, whenever that returns a tensor (a batch the cache holds); otherwise the model runs as usual
    and `capture` receives the site's input."""
    mods = dict(model.named_modules())
    current = {}
    handles = []

    def site_hook(_, args, kwargs):
        if current.get("states") is None:
            if capture is not None:
                capture(first_input(args, kwargs).detach())
            return None
        here = first_input(args, kwargs)  # computed from the zeros: on the model's device
        return _replace_first(args, kwargs, current["states"].to(here.device, non_blocking=True))

    def root_hook(_, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        rows, width = (ids.numel() // ids.shape[-1], ids.shape[-1]) if torch.is_tensor(ids) else (0, 0)
        current["states"] = states(rows, width) if torch.is_tensor(ids) else None
        current["shape"] = (rows, width)

    def skipping(template, original):
        def forward(*args, **kwargs):
            if current.get("states") is None:
                return original(*args, **kwargs)
            return zeros_like_template(template, *current["shape"])

        return forward

    handles.append(model.register_forward_pre_hook(root_hook, with_kwargs=True))
    handles.append(mods[split.site].register_forward_pre_hook(site_hook, with_kwargs=True))
    saved = {name: mods[name].__dict__.get("forward") for name in split.skip}
    for name, template in split.skip.items():
        mods[name].forward = skipping(template, mods[name].forward)
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for name, previous in saved.items():
            if previous is None:
                del mods[name].forward  # back to the class's forward
            else:
                mods[name].forward = previous
        current.clear()


def _widen(batch: dict, extra: int, pad_id: int) -> dict:
    """`batch` with `extra` more padded columns: the same examples, another width."""
    _, width = batch_shape(batch)
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() >= 2 and value.shape[-1] == width:
            fill = {"input_ids": pad_id, "labels": IGNORE}.get(key, 0)
            pad = torch.full((*value.shape[:-1], extra), fill, dtype=value.dtype, device=value.device)
            out[key] = torch.cat([value, pad], dim=-1)
        else:
            out[key] = value
    return out


def probes(features: list[dict], collate: Callable[[list[dict]], dict], pad_id: int) -> list[dict]:
    """Two small batches of the first examples: their row counts differ, their widths differ, and
    in the first the row count differs from the width (so recorded shapes tell the two apart)."""
    feats = (list(features) * 3)[:3]
    first = collate(feats)
    rows, width = batch_shape(first)
    if rows == width:
        first, width = _widen(first, 1, pad_id), width + 1
    second = collate(feats[:2])
    _, width2 = batch_shape(second)
    second = _widen(second, width + 2 - width2, pad_id)
    return [first, second]


def _close(a, b, mask: torch.Tensor | None) -> bool:
    if getattr(a, "loss", None) is not None and not torch.allclose(a.loss, b.loss, rtol=1e-5, atol=1e-6):
        return False
    la, lb = a.logits.float(), b.logits.float()
    if mask is not None and la.shape[:2] == mask.shape[:2]:  # per-token outputs: real tokens only
        keep = mask.bool()
        la, lb = la[keep], lb[keep]
    return torch.allclose(la, lb, rtol=1e-5, atol=1e-5)


def _lowest(model: nn.Module, trace: _Trace) -> tuple[str | None, str]:
    owners = [n for n, m in model.named_modules() if any(p.requires_grad for p in m.parameters(recurse=False))]
    if not owners:
        return None, "nothing trains"
    missing = [n for n in owners if n not in trace.first]
    if missing:
        return None, f"{missing[0]} owns a trainable tensor but is never called as a module"
    return min(owners, key=trace.first.__getitem__), ""


@torch.no_grad()
def find_split(model: nn.Module, blocks: str, batches: list[dict]) -> Split:
    """The lowest trainable module, the frozen bottom below it, and the finest cache site that is exact."""
    was_training = model.training
    model.eval()
    try:
        traces = [_trace(model, b) for b in batches]
        trace, _ = traces[0]
        lowest, reason = _lowest(model, trace)
        if lowest is None:
            return Split(lowest="", bottom=(), reason=reason)
        bottom = tuple(_maximal(trace.done_before(lowest)))
        split = Split(lowest=lowest, bottom=bottom)
        block = _block_of(lowest, blocks)
        candidates = [(lowest, "module")] + ([(block, "block")] if block and block != lowest else [])
        for site, granularity in candidates:
            plan = _plan(model, site, granularity, traces, batches, blocks)
            if plan is not None:
                plan.lowest, plan.bottom = lowest, bottom
                return plan
        split.reason = f"no cache site below {lowest} reproduces the model's outputs"
        return split
    finally:
        model.train(was_training)


def _plan(model, site: str, granularity: str, traces, batches, blocks: str):
    trace = traces[0][0]
    if any(t.calls(site) != 1 or not torch.is_tensor(t.inputs.get(site)) for t, _ in traces):
        return None
    mods = dict(model.named_modules())
    skip_names = [n for n in _maximal(trace.done_before(site)) if any(True for _ in mods[n].parameters())]
    if not skip_names:
        return None
    if any(trace.outputs.get(n) is None for n in skip_names):
        return None  # an output that zeros cannot stand in for (e.g. a ModelOutput)
    skip = {n: trace.outputs[n][1] for n in skip_names}
    split = Split(lowest="", bottom=(), site=site, granularity=granularity, skip=skip)
    for (t, ref), batch in zip(traces, batches):
        states = zero_padding(t.inputs[site], row_lengths(batch))
        try:
            with serving(model, split, lambda r, w, s=states: s):
                got = model(**batch)
        except (RuntimeError, ValueError, TypeError, IndexError, AttributeError):
            return None  # a zero stand-in broke the forward: the site is not separable there
        if not _close(ref, got, batch.get("attention_mask")):
            return None
    # Embedding lookups and norms outside the blocks cost next to nothing: only skipped block
    # computation makes the cache worth its memory.
    split.skipped_params = sum(p.numel() for n in skip_names if _block_of(n, blocks) for p in mods[n].parameters())
    x = trace.inputs[site]
    split.state_dim, split.state_dtype = x.shape[-1], x.dtype
    return split


def set_bottom_eval(model: nn.Module, split: Split) -> None:
    """Run the frozen bottom without dropout; call after every model.train()."""
    mods = dict(model.named_modules())
    for name in split.bottom:
        mods[name].eval()
