"""Records -> cells: one cell per (group, model, row, task, mask), at the lr with the best mean val score.

The contract (docs of lntune.sweep.store): for each cell the lr whose mean `val_score` over seeds is best is
kept (ties: the lower lr_rank, i.e. the earlier in the method's priority list); the cell reports the mean and
sample std (ddof=1; 0 with one seed) of the test `score` over the seeds run at that lr.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from lntune.errors import LntuneError
from lntune.spec.metrics import greater_is_better as higher_is_better  # noqa: F401 - the report's name for it
from lntune.spec.metrics import percent_scale  # noqa: F401 - also imported from here

from lntune.spec.records import RECORDS, Record, read_records


class ReportError(LntuneError):
    """The results store is missing, empty or holds records the report cannot read."""


@dataclass
class Cell:
    """One table cell before formatting; numbers are raw (0.81, not 81)."""

    group: str
    model: str
    row: str
    task: str
    task_kind: str  # nlu | nlg
    method: str
    metric: str
    options: dict
    mask_kind: str | None  # individual | global | cv | random, or None without a mask
    fraction: float | None
    lr: float  # the kept lr
    seeds: list  # seeds run at that lr
    scores: list[float]  # test score per seed, same order
    val_mean: float | None  # mean val score at that lr
    tuned_pct: float | None  # #Para. (% of the base model, head excluded)
    metrics: dict[str, tuple[float, float]] = field(default_factory=dict)  # every numeric test metric: mean, std
    lrs: dict = field(default_factory=dict)  # lr -> {"val_mean", "seeds"} for every lr tried
    order: int = 0  # first appearance in the store, for a stable row order

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def std(self) -> float:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else 0.0

    @property
    def higher(self) -> bool:
        return higher_is_better(self.metric)

    def summary(self) -> dict:
        """A flat dict for cells.csv."""
        return {"group": self.group, "model": self.model, "row": self.row, "task": self.task,
                "task_kind": self.task_kind, "method": self.method, "metric": self.metric,
                "mask_kind": self.mask_kind, "fraction": self.fraction, "lr": self.lr, "seeds": len(self.scores),
                "mean": self.mean, "std": self.std, "val_mean": self.val_mean, "tuned_pct": self.tuned_pct,
                "lrs_tried": json.dumps({str(k): v for k, v in self.lrs.items()})}



def cell_key(record: Record) -> tuple:
    mask = record.spec.mask
    return (record.group, record.spec.model, record.row or record.method, record.task,
            mask and mask.kind, mask and mask.fraction)


def aggregate(records: list[Record]) -> list[Cell]:
    """Cells of every reported training record, in order of first appearance. Runs of a sweep's lr_seed
    (`picks_lr`) chose the lr of the other seeds and are not reported (lntune.report.claims.lr_choices)."""
    buckets: dict[tuple, list[Record]] = {}
    for r in records:
        if r.is_reported:
            buckets.setdefault(cell_key(r), []).append(r)
    return [_cell(key, runs, i) for i, (key, runs) in enumerate(buckets.items())]


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.fmean(values) if values else None


def choose_lr(runs: list[Record], higher: bool) -> float:
    """The lr with the best mean val score; ties (and lrs without val scores) go to the lower lr_rank."""
    by_lr: dict[float, list[Record]] = {}
    for r in runs:
        by_lr.setdefault(r.lr, []).append(r)

    def rank(lr: float) -> tuple:
        val = _mean([r.val_score for r in by_lr[lr]])
        lr_rank = min(r.lr_rank for r in by_lr[lr])
        if val is None:
            return (1, 0.0, lr_rank)
        return (0, -val if higher else val, lr_rank)

    return min(by_lr, key=rank)


def _cell(key: tuple, runs: list[Record], order: int) -> Cell:
    group, model, row, task, mask_kind, fraction = key
    first = runs[0]
    metric = first.metric
    lr = choose_lr(runs, higher_is_better(metric))
    kept = sorted((r for r in runs if r.lr == lr), key=lambda r: r.seed)
    lrs = {}
    for r in runs:
        lrs.setdefault(r.lr, []).append(r)
    return Cell(
        group=group, model=model, row=row, task=task, task_kind=first.task_kind,
        method=first.method, metric=metric, options=first.options,
        mask_kind=mask_kind, fraction=fraction, lr=lr, seeds=[r.seed for r in kept],
        scores=[float(r.score) for r in kept], val_mean=_mean([r.val_score for r in kept]),
        tuned_pct=_mean([r.counts.tuned_pct for r in kept]),
        metrics=_metrics(kept), order=order,
        lrs={k: {"val_mean": _mean([r.val_score for r in v]), "seeds": len(v)} for k, v in lrs.items()},
    )


def _metrics(runs: list[Record]) -> dict[str, tuple[float, float]]:
    """Mean and std of each test metric that every seed reports as a number."""
    names = [k for k, v in (runs[0].test or {}).items() if isinstance(v, (int, float))
             and not isinstance(v, bool)]
    out = {}
    for name in names:
        vals = [(r.test or {}).get(name) for r in runs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            out[name] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
    return out


def load_records(results: str | Path) -> list[Record]:
    """The finished runs of a results store, with a clear error when there are none."""
    results = Path(results)
    path = results / RECORDS
    if not results.is_dir():
        raise ReportError(f"no results store at {results}: the folder does not exist; "
                          "pass the folder a sweep wrote (lntune sweep CONFIG --results RESULTS)")
    if not path.is_file():
        raise ReportError(f"no results store at {results}: {path} is missing; run a sweep into it first")
    records = read_records(results)
    if not records:
        raise ReportError(f"{path} holds no finished runs; nothing to report")
    return records

