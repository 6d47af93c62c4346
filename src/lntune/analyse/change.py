"""How much each component moved in fine-tuning: D = mean |after - before| (paper 002 eq. 1).

`after` is a skin (applied to its base) or a full model saved with save_pretrained; `before`
is the base model. Weight and bias of a module are pooled (paper 002 fig. 1); LN gains and
biases are also reported apart, per layer (paper 000 fig. 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lntune.analyse.components import components, lm_parts, mean_by, records
from lntune.data import get_task
from lntune.errors import LntuneError
from lntune.heads import head_of_config
from lntune.model import LoadedModel, load_model
from lntune.skin import SKIN_JSON, load_skin, read_skin

TERM_NAMES = {"weight": "gain", "bias": "bias"}


@dataclass
class Change:
    """|after - before| summed per parameter tensor of one fine-tuned model."""

    task: str  # panel label
    source: str  # skin or model directory
    model: str  # base model id
    rows: list[dict]  # components.records: one per base parameter, "sum" = sum of |delta|


def abs_change(before: LoadedModel, after: dict[str, torch.Tensor], source: str,
               base_values: dict[str, torch.Tensor] | None = None) -> list[dict]:
    """One record per base parameter (task head excluded) with the sum of |after - before|. `base_values`: the
    pretrained values, taken before `before` itself trained (a run measured in memory, with no second load)."""
    parts = lm_parts(before)
    diffs = {}
    for name, p in (base_values.items() if base_values is not None else before.base_parameters()):
        if name not in after:
            raise LntuneError(
                f"{source}: no parameter {name} after loading; change compares the base parameters of "
                f"{before.model_id} by name, so the model must be a fine-tuned copy of it "
                "(methods that wrap modules rename them)"
            )
        q = after[name]
        if q.shape != p.shape:
            raise LntuneError(
                f"{source}: {name} has shape {tuple(q.shape)}, the base {before.model_id} has {tuple(p.shape)}; "
                "pass the base it was fine-tuned from with --model"
            )
        diffs[name] = (q.detach().float() - p.detach().float()).abs()
    return records(diffs, parts)


def _head_of(task: str | None, source: Path) -> str:
    if task:
        return get_task(task).head
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    return head_of_config(config.architectures, config.problem_type).name


class Bases:
    """Base models by (id, head), loaded once: several tasks share one base."""

    def __init__(self, norm_map: dict | None = None) -> None:
        self.norm_map, self._cache = norm_map, {}

    def get(self, model: str, head: str, num_labels: int = 2, dtype: str = "float32") -> LoadedModel:
        key = (model, head, dtype)
        if key not in self._cache:
            self._cache[key] = load_model(model, head, num_labels, dtype, self.norm_map)
        return self._cache[key]


def _params(lm_model) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in lm_model.named_parameters()}


def measure(
    source: str | Path, model: str | None = None, task: str | None = None, bases: Bases | None = None
) -> Change:
    """D inputs for one fine-tuned model: a skin directory or a save_pretrained directory."""
    source, bases = Path(source), bases or Bases()
    if (source / SKIN_JSON).exists():
        meta = read_skin(source)
        base_id = model or meta.base.model
        tuning, _ = load_skin(source, base_id, bases.norm_map)
        before = bases.get(base_id, meta.base.head, max(len(meta.labels), 1), meta.base.dtype)
        rows = abs_change(before, _params(tuning.lm.model), str(source))
        return Change(task or meta.task.name, str(source), base_id, rows)
    if (source / "config.json").exists():
        if model is None:
            raise LntuneError(f"{source} is a full model directory: say which base it was fine-tuned from with --model")
        from transformers import AutoConfig

        head = _head_of(task, source)
        after = load_model(str(source), head, AutoConfig.from_pretrained(source).num_labels, norm_map=bases.norm_map)
        rows = abs_change(bases.get(model, head), _params(after.model), str(source))
        return Change(task or source.name, str(source), model, rows)
    raise LntuneError(
        f"{source}: neither a skin ({SKIN_JSON}) nor a model directory (config.json); "
        "pass a skin written by lntune train or a folder written by save_pretrained"
    )


def cell_table(rows: list[dict]) -> dict[tuple, float]:
    """D per (component, layer), weight and bias of a module pooled."""
    return mean_by(rows, ("component", "layer"))


def ln_table(rows: list[dict]) -> dict[tuple, float]:
    """D per (norm label, term, layer) for the normalisation parameters only."""
    return mean_by([r for r in rows if r["norm"] is not None], ("norm", "term", "layer"))


def ranking(changes: list[Change]) -> list[dict]:
    """Components sorted by D averaged over their layers, then over tasks (largest first)."""
    per_task = {}
    for c in changes:
        cells = cell_table(c.rows)
        per_task[c.task] = {
            comp: sum(v for (k, _), v in cells.items() if k == comp) / sum(1 for k, _ in cells if k == comp)
            for comp in components(c.rows)
        }
    comps = components(changes[0].rows)
    rows = [{"component": comp, **{t: d[comp] for t, d in per_task.items()}} for comp in comps]
    for r in rows:
        r["mean"] = sum(r[t] for t in per_task) / len(per_task)
    rows.sort(key=lambda r: -r["mean"])
    return [{"rank": i + 1, **r} for i, r in enumerate(rows)]


def ln_row_label(norm: str, term: str) -> str:
    return f"{TERM_NAMES.get(term, term)} {norm}"
