"""The papers' tables from aggregated cells: main (000 tables 1-2), unified (000 table 3), ablation (000 table 4),
subset with Kruskal-Wallis tests (002 table 2, section 3.1), fraction (002 fig. 5) and efficiency (000 fig. 2)."""

from __future__ import annotations

import re
import statistics
from dataclasses import replace

from scipy.stats import rankdata

from lntune.report.aggregate import Cell, higher_is_better, percent_scale
from lntune.method import order
from lntune.spec.masks import MASK_KINDS
from lntune.report.stats import format_p, kruskal_wallis
from lntune.report.tables import (
    BEST, Row, Table, Value, fmt_number, fmt_pct, mark, mark_column, score_value, with_delta,
)
from lntune.method.paper import KRUSKAL, LN, SUBSET, base_method, has_ln, is_ln_combo, ln_defaults, ln_options

# Paper 000's row order (FT, adapters, prefix, MAM, 3V, BitFit, LN); unknown methods follow in store order.
NLG_METRICS = ("bleu", "nist", "meteor", "rouge_l", "cider", "ter", "rouge1", "rouge2")  # paper 000 table 2
METRIC_LABELS = {"bleu": "BLEU", "nist": "NIST", "meteor": "MET", "rouge_l": "R-L", "cider": "CIDEr", "ter": "TER",
                 "rouge1": "R-1", "rouge2": "R-2"}
ABLATION_KINDS = {"terms": "Term", "modules": "Module", "layers": "Layer", "mask": "Mask"}
MASK_ORDER = MASK_KINDS  # the report lists mask kinds in their defining order
AVG_DECIMALS = 1


def decimals(metric: str) -> int:
    """One decimal for percentages made from 0-1 metrics (81.2), two for the rest (BLEU 65.07, NIST 8.61)."""
    return 1 if percent_scale(metric) == 100.0 else 2


def metric_header(task: str, metric: str) -> str:
    return f"{task} {METRIC_LABELS.get(metric, metric)}" + ("" if higher_is_better(metric) else " ↓")


class Grid:
    """The cells of one group by (model, row, task), with models, rows and tasks in display order."""

    def __init__(self, cells: list[Cell]):
        self.cells = {(c.model, c.row, c.task): c for c in sorted(cells, key=lambda c: c.order)}
        self.models = _ordered(cells, lambda c: c.model)
        self.tasks = _ordered(cells, lambda c: c.task)
        self.metric = {c.task: c.metric for c in reversed(sorted(cells, key=lambda c: c.order))}
        self.kind = {c.task: c.task_kind for c in cells}
        firsts: dict = {}
        for c in sorted(cells, key=lambda c: c.order):
            firsts.setdefault((c.model, c.row), c)
        self._rows = {m: sorted((c for (cm, _), c in firsts.items() if cm == m), key=_row_key) for m in self.models}

    def rows(self, model: str) -> list[Cell]:
        """The first cell of each row: carries the label, method and options."""
        return self._rows[model]

    def get(self, model: str, row: str, task: str) -> Cell | None:
        return self.cells.get((model, row, task))

    def find(self, model: str, method: str, where=lambda c: True) -> Cell | None:
        return next((c for c in self.rows(model) if c.method == method and where(c)), None) \
            if model in self._rows else None


def _ordered(cells: list[Cell], key) -> list:
    first: dict = {}
    for c in sorted(cells, key=lambda c: c.order):
        first.setdefault(key(c), c.order)
    return list(first)


def _row_key(c: Cell) -> tuple:
    parts = c.method.split("+")
    rank = order(parts[0])
    return (rank, len(parts), c.order)


def _score(c: Cell | None) -> Value:
    if c is None:
        return Value()
    s = percent_scale(c.metric)  # one seed has no spread: "± 0.0" would claim one
    return score_value(c.mean * s, c.std * s if len(c.scores) > 1 else None, decimals(c.metric))


def _para(grid: Grid, model: str, row: str, tasks: list[str]) -> Value:
    pcts = [c.tuned_pct for t in tasks if (c := grid.get(model, row, t)) and c.tuned_pct is not None]
    p = statistics.fmean(pcts) if pcts else None
    return Value(fmt_pct(p), p)


class Averager:
    """Avg. over the higher-is-better NLU tasks; rows missing one are left out with a footnote (paper 000's 3V)."""

    def __init__(self, grid: Grid, tasks: list[str]):
        self.tasks = [t for t in tasks if grid.kind.get(t) != "nlg" and higher_is_better(grid.metric[t])]
        self.skipped = [t for t in tasks if t not in self.tasks and grid.kind.get(t) != "nlg"]
        self.missing: dict[str, list[str]] = {}

    @property
    def active(self) -> bool:
        return len(self.tasks) >= 2

    def value(self, grid: Grid, model: str, row: str, source: Grid | None = None) -> Value:
        source = source or grid
        cells = [source.get(model, row, t) for t in self.tasks]
        if any(c is None for c in cells):
            self.missing[row] = [t for t, c in zip(self.tasks, cells) if c is None]
            return Value(note="*")
        avg = statistics.fmean(c.mean * percent_scale(c.metric) for c in cells)
        return Value(fmt_number(avg, AVG_DECIMALS), avg)

    def notes(self) -> list[str]:
        out = []
        if self.missing:
            rows = "; ".join(f"{r} (no {', '.join(ts)})" for r, ts in self.missing.items())
            out.append(f"* Left out of Avg. for missing tasks: {rows}.")
        if self.skipped and self.active:
            out.append(f"Avg. leaves out tasks with a lower-is-better metric: {', '.join(self.skipped)}.")
        return out


def _sections(grid: Grid, table: Table, model: str) -> None:
    if len(grid.models) > 1:
        table.rows.append(Row(model, [], section=True))


def main_tables(cells: list[Cell]) -> list[Table]:
    """Paper 000 tables 1 (NLU: tasks and Avg.) and 2 (NLG: every generation metric and the mean rank)."""
    main = [c for c in cells if c.group == "main"]
    if not main:
        return []
    grid = Grid(main)
    nlu = [t for t in grid.tasks if grid.kind[t] != "nlg"]
    nlg = [t for t in grid.tasks if grid.kind[t] == "nlg"]
    out = []
    if nlu:
        out.append(_nlu_table("main", "Main results (NLU)", grid, nlu))
    if nlg:
        out.append(_nlg_table("main_nlg", "Main results (NLG)", grid, nlg))
    return out


def _nlu_table(name: str, title: str, grid: Grid, tasks: list[str]) -> Table:
    avg = Averager(grid, tasks)
    table = Table(name, title, ["#Para."] + tasks + (["Avg."] if avg.active else []))
    for model in grid.models:
        _sections(grid, table, model)
        for first in grid.rows(model):
            if not any(grid.get(model, first.row, t) for t in tasks):
                continue  # an NLG-only row in the NLU table, or the reverse
            values = [_para(grid, model, first.row, tasks)] + [_score(grid.get(model, first.row, t)) for t in tasks]
            if avg.active:
                values.append(avg.value(grid, model, first.row))
            table.rows.append(Row(first.row, values))
    for i, t in enumerate(tasks, start=1):
        mark_column(table, i, higher_is_better(grid.metric[t]), decimals(grid.metric[t]))
    if avg.active:
        mark_column(table, len(tasks) + 1, True, AVG_DECIMALS)
    table.notes += _score_notes(grid, tasks) + avg.notes()
    return table


def _score_notes(grid: Grid, tasks: list[str], marks: bool = True) -> list[str]:
    metrics = ", ".join(f"{t} {grid.metric[t]}" for t in tasks)
    return [f"Test score mean ± sample std over seeds at the lr with the best mean validation score; "
            f"0-1 metrics x100 (no ± where one seed ran). Metrics: {metrics}."
            + (" Bold: best, underlined: second best per column."
                                                         if marks else "")]


def _bold_best(values: list[Value]) -> None:
    """Bold only (paper 000 tables 3-4 bold the better average and underline nothing)."""
    mark(values, True, AVG_DECIMALS)
    for v in values:
        v.mark = v.mark if v.mark == BEST else ""


def _nlg_columns(grid: Grid, tasks: list[str]) -> list[tuple[str, str]]:
    out = []
    for t in tasks:
        cells = [c for c in grid.cells.values() if c.task == t]
        gen = [m for m in NLG_METRICS if any(m in c.metrics for c in cells)]
        out += [(t, m) for m in (gen or [grid.metric[t]])]
    return out


def _nlg_table(name: str, title: str, grid: Grid, tasks: list[str]) -> Table:
    cols = _nlg_columns(grid, tasks)
    table = Table(name, title, ["#Para."] + [metric_header(t, m) for t, m in cols] + ["Rank ↓"])
    missing = []
    for model in grid.models:
        _sections(grid, table, model)
        block = []
        for first in grid.rows(model):
            if not any(grid.get(model, first.row, t) for t in tasks):
                continue
            values = [_para(grid, model, first.row, tasks)]
            for t, m in cols:
                c = grid.get(model, first.row, t)
                if c is None or m not in c.metrics:
                    values.append(Value())
                    continue
                mean, std = c.metrics[m]
                s = percent_scale(m)
                values.append(score_value(mean * s, std * s, decimals(m)))
            block.append(Row(first.row, values))
        missing += _ranks(block, cols)
        table.rows += block
    for i, (t, m) in enumerate(cols, start=1):
        mark_column(table, i, higher_is_better(m), decimals(m))
    mark_column(table, len(cols) + 1, False, 2)
    table.notes += [
        "Generation metrics of the kept checkpoint (mean ± std over seeds); ↓: lower is better. "
        "Rank: the mean over the metric columns of the method's rank (1 = best, ties share the average rank).",
    ]
    if missing:
        table.notes.append(f"* Left out of Rank for missing metrics: {', '.join(missing)}.")
    return table


def _ranks(block: list[Row], cols: list[tuple[str, str]]) -> list[str]:
    """Append the mean-rank value to each row of one model block; rank only rows with every column."""
    complete = [r for r in block if all(v.value is not None for v in r.values[1:])]
    ranks = {id(r): [] for r in complete}
    for i, (_, m) in enumerate(cols, start=1):
        sign = -1.0 if higher_is_better(m) else 1.0
        shown = [sign * round(r.values[i].value, decimals(m)) for r in complete]
        for r, rank in zip(complete, rankdata(shown, method="average") if shown else []):
            ranks[id(r)].append(float(rank))
    for r in block:
        if id(r) in ranks:
            mean = statistics.fmean(ranks[id(r)])
            r.values.append(Value(fmt_number(mean, 2), mean))
        else:
            r.values.append(Value(note="*"))
    return [r.label for r in block if id(r) not in ranks]


def unified_table(cells: list[Cell]) -> Table | None:
    """Paper 000 table 3: each X beside X+LN, with the signed change of X+LN per task and on Avg."""
    uni = [c for c in cells if c.group == "unified"]
    if not uni:
        return None
    grid, main = Grid(uni), Grid([c for c in cells if c.group == "main"])
    tasks = grid.tasks
    avg = Averager(grid, tasks)
    table = Table("unified", "Unified framework: X vs X+LN", ["#Para."] + tasks + (["Avg."] if avg.active else []))
    borrowed = []
    for model in grid.models:
        _sections(grid, table, model)
        used: set[str] = set()
        for combo in [c for c in grid.rows(model) if is_ln_combo(c.method)]:
            base, source = grid.find(model, base_method(combo.method), lambda c: c.row not in used), grid
            if base is None:
                base, source = main.find(model, base_method(combo.method)), main
                if base is not None:
                    borrowed.append(base.row)
            if base is not None:
                used.add(base.row)
                table.rows.append(_plain_row(source, model, base.row, tasks, avg))
            used.add(combo.row)
            table.rows.append(_delta_row(grid, model, combo.row, source, base.row if base else None, tasks, avg))
            if base is not None and avg.active:
                _bold_best([table.rows[-2].values[-1], table.rows[-1].values[-1]])
        for c in grid.rows(model):
            if c.row not in used:
                table.rows.append(_plain_row(grid, model, c.row, tasks, avg))
    table.notes += _score_notes(grid, tasks, marks=False) + avg.notes()
    table.notes.append("In X+LN rows the signed change vs X follows each value; bold: the better Avg. of a pair.")
    if borrowed:
        table.notes.append(f"X rows taken from the main table: {', '.join(dict.fromkeys(borrowed))}.")
    return table


def _plain_row(grid: Grid, model: str, row: str, tasks: list[str], avg: Averager) -> Row:
    values = [_para(grid, model, row, tasks)] + [_score(grid.get(model, row, t)) for t in tasks]
    if avg.active:
        values.append(avg.value(grid, model, row))
    return Row(row, values)


def _delta_row(grid: Grid, model: str, row: str, ref_grid: Grid, ref_row: str | None, tasks: list[str],
               avg: Averager) -> Row:
    """`row`'s values with value - reference attached (the reference row shown above it)."""
    out = _plain_row(grid, model, row, tasks, avg)
    if ref_row is None:
        return out
    ref = _plain_row(ref_grid, model, ref_row, tasks, avg)
    for i, t in enumerate(tasks, start=1):
        with_delta(out.values[i], ref.values[i].value, higher_is_better(grid.metric[t]), decimals(grid.metric[t]))
    if avg.active:
        with_delta(out.values[-1], ref.values[-1].value, True, AVG_DECIMALS)
    return out


def ablation_kind(cell: Cell, defaults: dict) -> str:
    """Term / Module / Layer (paper 000 table 4) from the LN options that differ from full LN; "" for full LN."""
    if not has_ln(cell.method):
        return "Other"
    opts = ln_options(cell.options)
    changed = [k for k, v in opts.items() if k in defaults and v != defaults[k]]
    if cell.mask_kind:
        changed.append("mask")
    return " + ".join(ABLATION_KINDS.get(k, k) for k in changed) if changed else ""


def ablation_table(cells: list[Cell]) -> Table | None:
    """Paper 000 table 4: LN restricted to one term, module kind or half of the layers vs full LN (italic)."""
    abl = [c for c in cells if c.group == "ablation"]
    if not abl:
        return None
    defaults = ln_defaults()
    grid, main = Grid(abl), Grid([c for c in cells if c.group == "main"])
    tasks = grid.tasks
    avg = Averager(grid, tasks)
    table = Table("ablation", "Ablation of LN-tuning", ["Type", "#Para."] + tasks + (["Avg."] if avg.active else []))
    order = list(ABLATION_KINDS.values())
    for model in grid.models:
        _sections(grid, table, model)
        full = lambda c: c.method == LN and ablation_kind(c, defaults) == ""  # noqa: E731
        ref, source = main.find(model, LN, full), main
        if ref is None:
            ref, source = grid.find(model, LN, full), grid
        variants = [c for c in grid.rows(model) if not (source is grid and ref is not None and c.row == ref.row)]
        variants.sort(key=lambda c: (order.index(k) if (k := ablation_kind(c, defaults)) in order else len(order),
                                     c.order))
        if ref is not None:
            r = _plain_row(source, model, ref.row, tasks, avg)
            table.rows.append(Row(ref.row, [Value("Full")] + r.values, italic=True))
        rows = []
        for c in variants:
            r = _delta_row(grid, model, c.row, source, ref.row if ref else None, tasks, avg)
            rows.append(Row(c.row, [Value(ablation_kind(c, defaults) or "Full")] + r.values))
        if avg.active:
            _bold_best([r.values[-1] for r in rows])
        table.rows += rows
    table.notes += _score_notes(grid, tasks, marks=False) + avg.notes()
    table.notes.append("Italic: full LN-tuning, the reference; each ablated value is followed by its signed "
                       "change vs full LN; bold: the best ablated Avg.")
    if not any(r.italic for r in table.rows):
        table.notes.append("No full LN row (method ln with default options) in the main or ablation group: "
                           "no deltas.")
    return table


def subset_cells(cells: list[Cell]) -> tuple[list[Cell], list[str]]:
    """The subset group, plus the main group's full, BitFit and (plain) LN rows where the subset group has none:
    a sweep runs a spec two groups share once, under the first group's name."""
    sub = [c for c in cells if c.group == "subset"]
    if not sub:
        return [], []
    defaults = ln_defaults()
    have = {(c.model, c.method) for c in sub}
    borrowed = [c for c in cells if c.group == "main" and c.method in SUBSET
                and (c.model, c.method) not in have and c.model in {s.model for s in sub}
                and not (c.method == LN and ablation_kind(c, defaults))]
    return sub + borrowed, list(dict.fromkeys(c.row for c in borrowed))


def subset_table(cells: list[Cell]) -> Table | None:
    """Paper 002 table 2: full, BitFit, LN and a random subset of as many parameters as LN."""
    sub, borrowed = subset_cells(cells)
    if not sub:
        return None
    grid = Grid(sub)
    table = Table("subset", "Full vs BitFit vs LN vs random subset", ["#Para."] + grid.tasks)
    for model in grid.models:
        _sections(grid, table, model)
        for first in grid.rows(model):
            table.rows.append(_plain_row(grid, model, first.row, grid.tasks, Averager(grid, [])))
    for i, t in enumerate(grid.tasks, start=1):
        mark_column(table, i, higher_is_better(grid.metric[t]), decimals(grid.metric[t]))
    table.notes += _score_notes(grid, grid.tasks)
    if borrowed:
        table.notes.append(f"Rows taken from the main table: {', '.join(borrowed)}.")
    return table


KW_DIGITS = 12


def kruskal_table(cells: list[Cell]) -> Table | None:
    """Paper 002 section 3.1: Kruskal-Wallis between methods over their per-task mean scores, and per task
    over seeds where every method has at least two."""
    grid = Grid(subset_cells(cells)[0])
    table = Table("subset_kruskal", "Kruskal-Wallis tests (subset group)", ["Scope", "n", "H", "p-value"],
                  label_header="Comparison")
    for model in grid.models:
        _sections(grid, table, model)
        for name, methods in KRUSKAL:
            rows = [grid.find(model, m) for m in methods]
            if any(r is None for r in rows):
                continue
            shared = [t for t in grid.tasks if all(grid.get(model, r.row, t) for r in rows)]
            if len(shared) >= 2:
                # rounded: means of equal scores summed in another order must tie, not differ by 1e-16
                groups = [[round(grid.get(model, r.row, t).mean, KW_DIGITS) for t in shared] for r in rows]
                table.rows.append(_kw_row(f"{name}", f"across {len(shared)} tasks (per-task means)", groups))
            for t in shared:
                groups = [[round(v, KW_DIGITS) for v in grid.get(model, r.row, t).scores] for r in rows]
                if all(len(g) >= 2 for g in groups):
                    table.rows.append(_kw_row(name, f"{t}, over seeds", groups))
    if not any(not r.section for r in table.rows):
        return None
    table.notes.append("scipy.stats.kruskal on raw test scores (rounded to 12 decimals so float noise does not "
                       "break ties); the across-tasks test compares the methods' per-task mean scores over the "
                       "tasks they share, as paper 002 does for LN vs BitFit. "
                       "p < 0.05 would mean the methods differ significantly.")
    return table


def _kw_row(name: str, scope: str, groups: list[list[float]]) -> Row:
    kw = kruskal_wallis(*groups)
    return Row(name, [Value(scope), Value(" / ".join(str(len(g)) for g in groups)),
                      Value(fmt_number(kw.statistic, 3) if kw.statistic is not None else "-", kw.statistic),
                      Value(format_p(kw), kw.pvalue)])


ALL_LN = "all LN (no mask)"


def fraction_cells(cells: list[Cell]) -> list[Cell]:
    """The fraction group, plus main's plain LN cell of each (model, task) it has no unmasked cell for:
    training every LN element is the fraction-1 end of paper 002's fig. 5."""
    frac = [c for c in cells if c.group == "fraction"]
    have = {(c.model, c.task) for c in frac if c.fraction is None}
    want = {(c.model, c.task) for c in frac} - have
    defaults = ln_defaults()
    borrowed = [replace(c, row=ALL_LN) for c in cells if c.group == "main" and c.method == LN
                and not c.mask_kind and (c.model, c.task) in want and not ablation_kind(c, defaults)]
    return frac + borrowed


def fraction_table(cells: list[Cell]) -> Table | None:
    """Paper 002 fig. 5 as numbers: one block per task, one row per mask kind, one column per fraction, and
    an unmasked LN row in a last column "1" where there is one."""
    cells = fraction_cells(cells)
    frac = [c for c in cells if c.fraction is not None]
    if not frac:
        return None
    refs = [c for c in cells if c.fraction is None]
    fractions = sorted({c.fraction for c in frac})
    columns = [f"{f:g}" for f in fractions] + (["1"] if refs else [])
    table = Table("fraction", "Score vs trained fraction of LN", columns, label_header="Mask")
    models = _ordered(frac, lambda c: c.model)
    for model in models:
        for task in _ordered([c for c in frac if c.model == model], lambda c: c.task):
            here = [c for c in frac if c.model == model and c.task == task]
            table.rows.append(Row(task if len(models) == 1 else f"{model} · {task}", [], section=True))
            kinds = sorted({c.mask_kind for c in here}, key=lambda k: (MASK_ORDER.index(k) if k in MASK_ORDER
                                                                       else len(MASK_ORDER), str(k)))
            for kind in kinds:
                by_f = {c.fraction: c for c in here if c.mask_kind == kind}
                table.rows.append(Row(str(kind), [_score(by_f.get(f)) for f in fractions] + ([Value()] if refs
                                                                                                  else [])))
            metric = here[0].metric
            for i in range(len(fractions)):
                mark_column_block(table, i, higher_is_better(metric), decimals(metric), len(kinds))
            for ref in (c for c in refs if (c.model, c.task) == (model, task)):
                table.rows.append(Row(ref.row, [Value() for _ in fractions] + [_score(ref)]))
    table.notes.append("Mean ± std over seeds of the test score, per mask kind (individual: the task's own Fisher; "
                       "global: all tasks'; cv: all other tasks'; random: a seeded draw) and fraction of LN elements "
                       "trained. Bold/underlined: best/second kind at each fraction.")
    if any(c.row == ALL_LN for c in refs):
        table.notes.append(f"{ALL_LN}: the main table's LN row, every LN element trained (fraction 1).")
    return table


def mark_column_block(table: Table, col: int, higher: bool, dec: int, size: int) -> None:
    """Mark within the last `size` rows (the block just added)."""
    mark([r.values[col] for r in table.rows[-size:]], higher, dec)


def fraction_series(cells: list[Cell]) -> dict:
    """{(model, task): {"lines": {kind: (fractions, means, stds)}, "refs": {row: (mean, std)}, "ylabel": str}}
    on the display scale; cells of the fraction group without a mask become reference lines."""
    out: dict = {}
    for c in fraction_cells(cells):
        s = percent_scale(c.metric)
        entry = out.setdefault((c.model, c.task), {"lines": {}, "refs": {}, "ylabel": c.metric
                                                   + (" (x100)" if s == 100 else "")})
        if c.fraction is None:
            entry["refs"][c.row] = (c.mean * s, c.std * s)
            continue
        xs, ms, ss = entry["lines"].setdefault(str(c.mask_kind), ([], [], []))
        xs.append(c.fraction)
        ms.append(c.mean * s)
        ss.append(c.std * s)
    for entry in out.values():
        for kind, (xs, ms, ss) in entry["lines"].items():
            order = sorted(range(len(xs)), key=xs.__getitem__)
            entry["lines"][kind] = tuple([v[i] for i in order] for v in (xs, ms, ss))
    return out


def seed_notes(cells: list[Cell]) -> list[str]:
    """Cells run with fewer seeds than the most in their group (the grid itself needs the sweep config)."""
    out = []
    for group in _ordered(cells, lambda c: c.group):
        here = [c for c in cells if c.group == group]
        most = max(len(c.scores) for c in here)
        for c in here:
            if len(c.scores) < most:
                mask = f", mask {c.mask_kind} {c.fraction:g}" if c.fraction is not None else ""
                out.append(f"{group}: {c.row} on {c.task}{mask} ({c.model}): {len(c.scores)} seed(s) at the kept "
                           f"lr {c.lr:g}, others {most}")
    return out


KNOWN_GROUPS = ("main", "unified", "ablation", "subset", "fraction", "efficiency")


def other_tables(cells: list[Cell]) -> list[Table]:
    """Groups the papers have no table for get a main-style table each, so no result goes unreported."""
    out = []
    for group in _ordered(cells, lambda c: c.group):
        if group not in KNOWN_GROUPS:
            grid = Grid([c for c in cells if c.group == group])
            name = "group_" + re.sub(r"[^A-Za-z0-9_-]+", "_", group)
            out.append(_nlu_table(name, f"Group {group}", grid, grid.tasks))
    return out
