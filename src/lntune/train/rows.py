"""The last block computes only the row the head reads.

A sequence-level head that reads position 0 of the last block (BERT's pooler, RoBERTa's and
ELECTRA's classifiers) leaves the other rows of that block dead after its attention: from there on
every operation works row by row, so those rows change neither the loss nor any gradient. Cutting
them saves the attention output projection, the feed-forward layer, their dropout and their
backward for all but one row of the last block, about an eighth of a 6-layer step.

The cut point is found, not assumed: the first module inside the last block whose input, cut to
position 0, leaves the model's loss and logits unchanged on two probe batches of different shapes.
Models whose head reads another position (decoders read the last token) get no cut."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from lntune.train.split import _close, _trace, batch_shape


def _cut(value, rows: int, width: int):
    if torch.is_tensor(value) and value.dim() >= 2 and tuple(value.shape[:2]) == (rows, width):
        return value[:, :1]
    return value


@contextlib.contextmanager
def cutting(model: nn.Module, site: str | None):
    """Inside: `site`'s tensor inputs shaped (rows, width, ...) are cut to position 0. `model` may be
    wrapped (DistributedDataParallel): `site` names a module of the model inside."""
    if site is None:
        yield
        return
    model = unwrap(model)
    shape = {}

    def root(_, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        shape["rw"] = batch_shape({"input_ids": ids}) if torch.is_tensor(ids) else None

    def cut(_, args, kwargs):
        if shape.get("rw") is None:
            return None
        r, w = shape["rw"]
        return tuple(_cut(a, r, w) for a in args), {k: _cut(v, r, w) for k, v in kwargs.items()}

    handles = [model.register_forward_pre_hook(root, with_kwargs=True),
               model.get_submodule(site).register_forward_pre_hook(cut, with_kwargs=True)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel (or DataParallel) wrapper, whose module names are the model's."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


@torch.no_grad()
def find_cut(model: nn.Module, blocks: str, batches: list[dict]) -> str | None:
    """The first module of the last block that can run on position 0 alone, or None."""
    last = f"{blocks}.{len(model.get_submodule(blocks)) - 1}."
    was_training = model.training
    model.eval()
    try:
        traces = [_trace(model, b) for b in batches]
        trace = traces[0][0]
        rows, width = batch_shape(batches[0])
        for name in sorted((n for n in trace.first if n.startswith(last)), key=trace.first.__getitem__):
            x = trace.inputs[name]
            if not (torch.is_tensor(x) and x.dim() >= 2 and tuple(x.shape[:2]) == (rows, width)) or width < 2:
                continue
            if all(_same_with_cut(model, name, b, ref) for (_, ref), b in zip(traces, batches)):
                return name
        return None
    finally:
        model.train(was_training)


def _same_with_cut(model, site: str, batch: dict, ref) -> bool:
    try:
        with cutting(model, site):
            got = model(**batch)
    except (RuntimeError, ValueError, TypeError, IndexError):
        return False  # the module cannot run on one row (e.g. it reshapes by the sequence length)
    return got.logits.shape == ref.logits.shape and _close(ref, got, None)
