"""Paper 000 fig. 2: training and inference time per method relative to full fine-tuning = 100, plus peak memory,
from the sweep's efficiency records (one machine, one sweep)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from lntune.spec.records import Record
from lntune.method import order
from lntune.method.paper import FULL  # the 100 of relative figures
from lntune.report.tables import Row, Table, Value, fmt_number, fmt_score

FIELDS = (("train_step_seconds", "Train step (s)", "Train (FT = 100)", 3),
          ("infer_batch_seconds", "Inference batch (s)", "Inference (FT = 100)", 3),
          ("peak_memory_mb", "Peak memory (MB)", "Memory (FT = 100)", 0))


@dataclass
class EffRow:
    """One method's efficiency: absolute means over its tasks, and relative to FT over the tasks both have."""

    model: str
    row: str
    method: str
    absolute: dict[str, float]
    relative: dict[str, float | None] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)  # std over timing repeats, FT = 100 scale
    repeats: int = 1


def _by_task(records: list[Record]) -> dict[str, dict[str, float]]:
    """task -> field -> mean over that task's records (seeds, repeats)."""
    tasks: dict[str, list[dict]] = {}
    for r in records:
        tasks.setdefault(r.task, []).append(r.efficiency.model_dump())
    return {t: {f: statistics.fmean(e[f] for e in effs if e.get(f) is not None)
                for f, *_ in FIELDS if any(e.get(f) is not None for e in effs)} for t, effs in tasks.items()}


def efficiency_rows(records: list[Record]) -> list[EffRow]:
    recs = [r for r in records if r.is_timing and r.efficiency]
    groups: dict[tuple, list[Record]] = {}
    for r in recs:
        groups.setdefault((r.spec.model, r.row or r.method), []).append(r)
    out = []
    per_task = {k: _by_task(v) for k, v in groups.items()}
    for (model, row), rs in groups.items():
        tasks = per_task[(model, row)]
        absolute = {f: statistics.fmean(v[f] for v in tasks.values() if f in v)
                    for f, *_ in FIELDS if any(f in v for v in tasks.values())}
        out.append(EffRow(model, row, rs[0].method, absolute, repeats=len(rs) // max(len(tasks), 1)))
    for e in out:
        ft = next((k for k in groups if k[0] == e.model and groups[k][0].method == FULL), None)
        if ft is None:
            continue
        mine, ref = per_task[(e.model, e.row)], per_task[ft]
        for f, *_ in FIELDS:
            shared = [t for t in mine if f in mine[t] and f in ref.get(t, {})]
            den = statistics.fmean(ref[t][f] for t in shared) if shared else 0.0
            e.relative[f] = 100.0 * statistics.fmean(mine[t][f] for t in shared) / den if den else None
            stds = []
            for t in shared:  # std over repeats within a task, not across tasks (their lengths differ)
                runs = [getattr(r.efficiency, f) for r in groups[(e.model, e.row)]
                        if r.task == t and getattr(r.efficiency, f) is not None]
                if len(runs) > 1:
                    stds.append(statistics.stdev(runs))
            if den and stds:
                e.spread[f] = 100.0 * statistics.fmean(stds) / den
    return sorted(out, key=lambda e: (e.model, order(e.method), len(e.method.split("+"))))


def efficiency_table(records: list[Record]) -> Table | None:
    rows = efficiency_rows(records)
    if not rows:
        return None
    relative = any(e.relative for e in rows)
    cols = [c for f, absolute, rel, _ in FIELDS for c in ((absolute, rel) if relative else (absolute,))]
    table = Table("efficiency", "Efficiency (paper 000 fig. 2)", cols)
    models = list(dict.fromkeys(e.model for e in rows))
    for model in models:
        if len(models) > 1:
            table.rows.append(Row(model, [], section=True))
        for e in (e for e in rows if e.model == model):
            values = []
            for f, _, _, dec in FIELDS:
                a = e.absolute.get(f)
                values.append(Value(fmt_number(a, dec), a))
                if relative:
                    r, sd = e.relative.get(f), e.spread.get(f)
                    values.append(Value(fmt_score(r, sd, 1) if r is not None else "-", r, sd))
            table.rows.append(Row(e.row, values))
    table.notes += _notes(records, rows, relative)
    return table


def _notes(records: list[Record], rows: list[EffRow], relative: bool) -> list[str]:
    recs = [r for r in records if r.is_timing and r.efficiency]
    settings = []
    for key, label in (("batch_size", "batch"), ("seq_len", "tokens"), ("device", "device"), ("threads", "threads")):
        vals = sorted({str(getattr(r.efficiency, key)) for r in recs if getattr(r.efficiency, key) is not None})
        if vals:
            settings.append(f"{label} {'/'.join(vals)}")
    tasks = sorted({r.task for r in recs})
    notes = [f"Median train step (forward, backward, optimizer step) and no-grad forward of one batch; peak memory "
             f"of the run's process. Settings: {', '.join(settings) or 'not recorded'}; tasks: {', '.join(tasks)}."]
    reps = max((e.repeats for e in rows), default=1)
    if reps > 1:
        notes.append(f"Each method was timed {reps} times (methods interleaved); seconds are the mean of the runs' "
                     "medians, ± the std over the runs on the FT = 100 scale.")
    if relative:
        notes.append("FT = 100: the method's mean over the tasks it shares with full fine-tuning divided by full "
                     "fine-tuning's mean over the same tasks.")
    else:
        notes.append("No full fine-tuning (method full) efficiency record in this store: absolute values only.")
    machines = sorted({r.machine or "?" for r in recs})
    if len(machines) > 1:
        notes.append(f"Warning: efficiency records come from {len(machines)} machines; timings do not compare.")
    return notes
