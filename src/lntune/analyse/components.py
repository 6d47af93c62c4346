"""Name every parameter by component, layer and term, and average per-element values over groups.

A component is a module path: relative to its transformer block inside the block list
(`attention.self.query` at layer 3), else relative to the base model (`embeddings.word_embeddings`,
`pooler.dense`). Names come from the parameters themselves, so any architecture works.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass

import torch

NO_LAYER = "-"  # column label for components outside the block list


@dataclass(frozen=True)
class Part:
    """Where one parameter tensor sits."""

    component: str  # module path, relative to its block or to the base model
    layer: int | None  # block index; None outside the block list
    term: str  # last name part: weight (an LN's gain), bias, ...
    norm: str | None  # norm label (embeddings, mha, ffn, final) for normalisation parameters


def locate(names, norms, prefix: str = "") -> dict[str, Part]:
    """Part of each parameter name; `norms` is the model's NormMap, `prefix` its base_model_prefix."""
    block_re = re.compile(rf"^{re.escape(norms.blocks)}\.(\d+)\.(.+)$")
    labels = {s.name: s.label for s in norms}
    parts = {}
    for name in names:
        module, _, term = name.rpartition(".")
        m = block_re.match(name)
        if m:
            layer, component = int(m.group(1)), m.group(2).rpartition(".")[0]
        else:
            layer, component = None, module.removeprefix(f"{prefix}.") if prefix else module
        parts[name] = Part(component or name, layer, term or name, labels.get(module))
    return parts


def lm_parts(lm) -> dict[str, Part]:
    """Parts of the base parameters of a LoadedModel (the task head is not part of the base)."""
    names = [n for n, _ in lm.base_parameters()]
    return locate(names, lm.norms, getattr(lm.model, "base_model_prefix", ""))


def records(values: dict[str, torch.Tensor], parts: dict[str, Part]) -> list[dict]:
    """One row per parameter: its part, element count and the sum of its per-element values."""
    return [
        {"param": n, **asdict(parts[n]), "n": v.numel(), "sum": float(v.double().sum())}
        for n, v in values.items()
        if n in parts
    ]


def mean_by(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, float]:
    """Mean per element over every row sharing `keys` (e.g. weight and bias of a module together)."""
    sums, counts = defaultdict(float), defaultdict(int)
    for r in rows:
        k = tuple(r[key] for key in keys)
        sums[k] += r["sum"]
        counts[k] += r["n"]
    return {k: sums[k] / counts[k] for k in sums}


def sum_by(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, float]:
    out: dict[tuple, float] = defaultdict(float)
    for r in rows:
        out[tuple(r[key] for key in keys)] += r["sum"]
    return dict(out)


def components(rows: list[dict]) -> list[str]:
    """Components in module order (first appearance), so tables read top to bottom like the model."""
    return list(dict.fromkeys(r["component"] for r in rows))


def layer_label(layer: int | None) -> str:
    return NO_LAYER if layer is None else str(layer)
