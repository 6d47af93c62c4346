"""The sequential seed rule (config `sequential:`): how many reported seeds each row of the listed contrasts gets.

A contrast starts with `start` seeds. Once every pair of its first n seeds is recorded, its CI half-width
(lntune.report.paired.stratified_t over the task strata) decides: at or below `half_width`, or at `max` seeds,
it stops at n; otherwise it asks for n + `block` (capped at `max`). A row runs as many seeds as the most
demanding contrast it is in; the report analyses each contrast on the seeds where its own rule stopped
(`stop_points`), so a row extended for one contrast does not lengthen another.
"""
from __future__ import annotations

from dataclasses import dataclass

from lntune.report.aggregate import higher_is_better, percent_scale
from lntune.spec.records import Record


@dataclass(frozen=True)
class Sequential:
    """How many reported seeds the rows of the listed contrasts get: `start` first; then, after each block of
    `block`, more only while a contrast's CI half-width (t-interval of the task-stratified mean paired difference,
    lntune.report.paired.stratified_t) exceeds `half_width` points, at most `max` seeds. A sweep config's
    `sequential:` section; the report reads it back from design.json."""

    contrasts: list[tuple[str, str]]  # (row A, row B)
    start: int = 9
    block: int = 3
    max: int = 16
    half_width: float = 1.5
    level: float = 0.95

    @classmethod
    def from_json(cls, data: dict | None) -> "Sequential | None":
        if not data:
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "contrasts": [tuple(c) for c in data["contrasts"]]})


@dataclass(frozen=True)
class Stop:
    """Where one contrast's rule stands: its seed count, and whether the rule has stopped there."""

    seeds: int  # reported seeds per task the contrast uses (or waits for)
    stopped: bool  # False: runs of these seeds are still missing
    half_width: float | None = None  # at `seeds`, once recorded


def _points(record: Record) -> float:
    score = float(record.score) * percent_scale(record.metric)
    return score if higher_is_better(record.metric) else -score


def reported(records: list[Record]) -> dict[tuple[str, str, int], Record]:
    """(row, task, seed) -> the reported training record (lr_seed and timing runs excluded)."""
    return {(r.row, r.task, r.seed): r for r in records if r.is_reported}


def contrast_stop(rule: Sequential, a: str, b: str, tasks: list[str], seeds: list[int],
                  runs: dict[tuple[str, str, int], Record]) -> Stop:
    """Walk the rule for A - B over `tasks`, `seeds` being the reported seeds in order (lr_seed excluded)."""
    from lntune.report.paired import stratified_t  # scipy: only when a rule is walked, not when a config is read

    n = min(rule.start, rule.max, len(seeds))
    while True:
        keys = [(t, s) for t in tasks for s in seeds[:n]]
        if any((a, t, s) not in runs or (b, t, s) not in runs for t, s in keys):
            return Stop(n, False)
        diffs: dict[str, list[float]] = {}
        for t, s in keys:
            diffs.setdefault(t, []).append(_points(runs[(a, t, s)]) - _points(runs[(b, t, s)]))
        half = stratified_t(diffs, rule.level)[1]
        if half <= rule.half_width or n >= min(rule.max, len(seeds)):
            return Stop(n, True, half)
        n = min(n + rule.block, rule.max, len(seeds))


def stop_points(rule: Sequential, tasks: dict[str, list[str]], seeds: dict[str, list[int]],
                records: list[Record]) -> dict[tuple[str, str], Stop]:
    """(A, B) -> Stop for every contrast of the rule; `tasks` and `seeds` per row (seeds: reported, in order)."""
    runs = reported(records)
    out = {}
    for a, b in rule.contrasts:
        common = [t for t in tasks.get(a, []) if t in tasks.get(b, [])]
        order = [s for s in seeds.get(a, []) if s in seeds.get(b, [])]
        out[(a, b)] = contrast_stop(rule, a, b, common, order, runs)
    return out


def allowed_seeds(rule: Sequential, tasks: dict[str, list[str]], seeds: dict[str, list[int]],
                  records: list[Record]) -> dict[str, int]:
    """row -> how many of its reported seeds may run now: the most any of its contrasts asks for."""
    out: dict[str, int] = {}
    for (a, b), stop in stop_points(rule, tasks, seeds, records).items():
        for row in (a, b):
            out[row] = max(out.get(row, 0), stop.seeds)
    return out
