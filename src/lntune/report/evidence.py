"""The report's evidence sections for a sweep run with an analysis plan (RESULTS/design.json): the registered
contrasts with their verdicts (lntune.report.claims), a forest plot, the lr each method was given, the runs the
design's rules flag, and the parameter-change figures drawn from the sweep's own converged runs."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from lntune.analyse.files import write_csv, write_json
from lntune.errors import LntuneError
from lntune.report import claims as C
from lntune.report.aggregate import Cell, aggregate, load_records
from lntune.spec.records import Record
from lntune.report.document import Figure, Section
from lntune.report.tables import Row, Table, Value

DESIGN = "design.json"
COVERAGE = "sequential_coverage.json"
CHANGE_DIR = "change"


def read_design(results: Path) -> dict | None:
    """RESULTS/design.json, refused when its families name a contrast that is not registered: that contrast
    would be left out of the family meant for it and be tested (or not) on the wrong terms."""
    path = Path(results) / DESIGN
    if not path.is_file():
        return None
    design = json.loads(path.read_text())
    known = {c.name for c in C.CONTRASTS}
    families = (design.get("analysis") or {}).get("families") or {}
    unknown = [name for names in families.values() for name in names if name not in known]
    if unknown:
        raise LntuneError(f"{path}: analysis.families names contrasts that are not registered: "
                          f"{', '.join(map(repr, unknown))}. Fix the sweep YAML's analysis.families (quote names "
                          "that hold a comma) and start the sweep again: it rewrites design.json")
    return design


def read_coverage(results: Path) -> dict | None:
    """RESULTS/sequential_coverage.json (benchmarks/sequential_coverage.py): the seed rule's coverage, simulated
    before the runs; None when there is none."""
    path = Path(results) / COVERAGE
    return json.loads(path.read_text()) if path.is_file() else None


def coverage_table(coverage: dict) -> Table:
    """The seed rule's coverage by simulation: the t-interval it reads, the same draws at fixed seed counts, the
    bootstrap CI the verdicts show, and where the simulated contrasts stopped."""
    rule = coverage["rule"]
    t = Table("rule_coverage", "The seed rule's coverage, simulated on the baseline's paired differences "
              "before the runs", ["Draws", "t-interval, with the rule", "t-interval, fixed seeds",
                                  "Bootstrap CI, with the rule", "Stopped at (seeds: share)"],
              label_header="Contrast A - B")
    for r in coverage["rows"]:
        fixed = ", ".join(f"{n}: {c:.3f}" for n, c in r["coverage_t_fixed"].items())
        sims = sum(r["stopped_at"].values()) or 1
        stops = ", ".join(f"{n}: {k / sims:.0%}" if k / sims >= 0.005 else f"{n}: <1%"
                          for n, k in sorted(r["stopped_at"].items(), key=lambda x: int(x[0])))
        t_cover, boot_cover = r["coverage_t"], r["coverage_bootstrap"]
        t.rows.append(Row(r["contrast"], [Value(r["draw"]), Value(f"{t_cover:.3f}", t_cover), Value(fixed),
                                          Value(f"{boot_cover:.3f}", boot_cover), Value(stops)]))
    sims, boot = coverage["rows"][0]["sims"], coverage["rows"][0]["boot_sims"]
    t.notes.append(f"Share of {sims} simulated contrasts ({boot} for the bootstrap) whose interval held the true "
                   f"mean, under the rule (start {rule['start']} seeds, blocks of {rule['block']}, stop at "
                   f"half-width <= {rule['half_width']} or {rule['max']} seeds). Draws: the baseline's differences "
                   "resampled per task, or a normal with their SD. Nominal: "
                   f"{rule['level']:.0%}; well below it, read the CI as narrower than it says "
                   "(benchmarks/sequential_coverage.py).")
    return t


def _p(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}" if x >= 1e-3 else f"{x:.1e}"


def claims_table(outs: list[C.Outcome], design: C.Design) -> Table:
    unit = lambda o: "%" if o.contrast.measure != C.SCORE else ""  # noqa: E731 - time contrasts are relative
    staged = bool(design.families)  # a design with families also shows each family, the t-interval and the seeds
    extra = ["Family", "t ± (seeds/task)"] if staged else []
    t = Table("claims_table", "The registered contrasts: paired differences A - B and verdicts",
              extra + ["Claim (source)", "Tasks", "Pairs", f"Mean [{design.level:.0%} CI]", "p (Holm)", "TOST p (Holm)",
                       "Verdict", "Qualifiers"], label_header="Contrast A - B")
    for o in outs:
        r = o.result
        ci = "-" if r is None else f"{r.mean:+.2f}{unit(o)} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        tested = o.tested
        seeds = "" if o.stop is None else f" ({o.stop.seeds}{'' if o.stop.stopped else ', rule running'})"
        t_col = [Value(o.family or "-"), Value(("-" if o.t_half is None else f"±{o.t_half:.2f}") + seeds, o.t_half)]
        t.rows.append(Row(o.contrast.name, (t_col if staged else []) + [
            Value(f"{o.contrast.claim.statement} ({o.contrast.claim.source})"),
            Value(", ".join(o.tasks) or "-"), Value(str(o.pairs), float(o.pairs)),
            Value(ci, r.mean if r else None),
            Value(f"{_p(tested.p if tested else None)} ({_p(o.p_holm)})", o.p_holm),
            Value(f"{_p(tested.p_equiv if tested else None)} ({_p(o.p_equiv_holm)})", o.p_equiv_holm),
            Value(f"{o.verdict}: {o.reason}" if o.reason else o.verdict),
            Value("; ".join(o.flags + ([o.note] if o.note else [])) or "-"),
        ]))
    if staged:
        t.notes.append(
            "Families: Holm runs within each family (" + "; ".join(f"{name}: {len(m)}" for name, m in design.families)
            + "); the descriptive family gets a mean and CI, no test. t ±: half-width of the t-interval of the "
            "task-stratified mean (Welch-Satterthwaite df), the quantity the sequential seed rule reads; the "
            "seeds per task are where that rule stopped the contrast.")
        if design.sequential is not None:
            t.notes.append("A CI whose seed count a sequential rule chose can cover less than its nominal level; "
                           "check the rule's coverage by simulation on the observed differences "
                           "(benchmarks/sequential_coverage.py; its table follows when RESULTS has its file).")
        if design.gate is not None:
            t.notes.append(f"Convergence gate: a verdict is withheld while a side keeps its last evaluation in more "
                           f"than {design.gate:.0%} of its runs on a task (see the health table).")
    within, too = ("within each family", "within each family too") if staged else (
        "over all the contrasts listed", "over the contrasts too")
    t.notes += [
        "Differences are A - B per (task, seed) on the table scale (x100 for 0-1 metrics); time contrasts are the "
        "relative difference in % of B's time. The mean weighs tasks equally; the CI is a bootstrap stratified by task.",
        f"p: exact sign-flip permutation test stratified by task (Monte Carlo above 16 pairs); Holm {within}. TOST: "
        f"two one-sided sign-flip tests of |difference| >= {design.margin:g} points, Holm {too}. 'holds' needs "
        "Holm p < 0.05 in the claimed direction.",
        f"A run failed when its validation accuracy was within {design.majority_margin:g} points of the majority "
        f"rate, or its validation Pearson r was below {design.min_r:g}; verdicts use every run, the qualifiers give "
        "the result without the pairs a failed run is in.",
    ]
    return t


def lr_table(records: list[Record], edges: bool = False) -> Table | None:
    """Every lr the lr seed tried with its validation score; with `edges`, whether the choice is inside the grid."""
    rows = C.lr_choices(records)
    if not rows:
        return None
    t = Table("lr_choice", "Learning rate chosen by the lr seed (validation score per lr tried)",
              ["Task", "Validation score by lr", "Used by the reported seeds"] + (["Inside the grid"] if edges else []),
              label_header="Row")
    for r in rows:
        tried = ", ".join(f"{lr}: {'-' if v is None else f'{v:.4f}'}" for lr, v in r["tried"].items())
        cells = [Value(r["task"]), Value(tried), Value(r["chosen"] + _tie(r))]
        if edges:
            cells.append(Value(_inside(r)))
        t.rows.append(Row(r["row"], cells))
    return t


def _tie(choice: dict) -> str:
    """Says so when another lr scored exactly what the chosen one did: the tie rule, not the score, chose."""
    score = choice["tried"].get(choice["chosen"])
    others = [lr for lr, v in choice["tried"].items() if lr != choice["chosen"] and v is not None and v == score]
    return f" (tied with {', '.join(others)}: the grid's order chose)" if score is not None and others else ""


def _inside(choice: dict) -> str:
    tried = sorted(float(lr) for lr in choice["tried"])
    try:
        chosen = float(choice["chosen"])
    except ValueError:
        return "-"
    if len(tried) < 3:
        return f"no: {len(tried)} lr(s) tried"
    if chosen == tried[0] or chosen == tried[-1]:
        return f"no: the {'lowest' if chosen == tried[0] else 'highest'} tried"
    return "yes"


def health_table(outs: list[C.Outcome], records: list[Record], design: C.Design) -> Table | None:
    """The convergence gate per row and task: reported runs (on the seeds each row's contrasts use), and how many
    kept their last evaluation, i.e. were still improving when the epoch cap stopped them."""
    if design.gate is None:
        return None
    sides: dict[str, C.Side] = {}
    for o in outs:
        for s in o.sides:
            if s.row not in sides or len(s.runs) > len(sides[s.row].runs):
                sides[s.row] = s  # the widest seed set any contrast analyses for this row
    t = Table("health", f"Run health: the convergence gate (at most {design.gate:.0%} of a row's runs on a task "
              "may keep their last evaluation)", ["Task", "Runs", "Kept the last evaluation", "Failed", "Gate"],
              label_header="Row")
    for row, s in sides.items():
        for task in sorted({k[0] for k in s.runs}):
            runs = {k: r for k, r in s.runs.items() if k[0] == task}
            last = sum(C.kept_last(r) for r in runs.values())
            failed = sum(k in s.failed for k in runs)
            gate = "-" if not design.gated(row) else "broken" if design.breaks_gate(row, last, len(runs)) else "passes"
            t.rows.append(Row(row, [Value(task), Value(str(len(runs)), float(len(runs))),
                                    Value(f"{last} ({last / len(runs):.0%})", float(last)),
                                    Value(str(failed), float(failed)), Value(gate)]))
    return t


def budget_section(records: list[Record], out: Path) -> Section | None:
    """The budget curve: runs with a `curve` (no early stopping, one long schedule), their score after each listed
    epoch, beside the early-stopped runs of the same row and seeds (the gate's cross-check)."""
    from lntune.report import plots  # lazy: matplotlib loads only when a figure is drawn

    curves: dict[str, dict[int, dict[int, float]]] = {}  # row -> epoch -> seed -> score (points)
    first: dict[str, Record] = {}  # row -> one of its records: the method, options and lr its early-stopped twin has
    task = metric = None
    for r in records:
        if not r.curve or r.picks_lr:
            continue
        task, metric = r.task, r.metric
        first.setdefault(r.row, r)
        for point in r.curve:
            curves.setdefault(r.row, {}).setdefault(point["epoch"], {})[r.seed] = \
                point[metric] * C.percent_scale(metric)
    if not curves:
        return None
    scale = C.percent_scale(metric)
    lines, rows = {}, []
    t = Table("budget_curve", f"Budget curve on {task}: {metric} on the reported split after each epoch of one "
              "long schedule (mean over seeds, min-max), and the early-stopped run of the same seeds",
              ["Seeds", "Score by epoch", "Early-stopped (same seeds)", "Last - early-stopped", "Seed SD (last)",
               "Cross-check"],
              label_header="Row")
    for row, by_epoch in curves.items():
        epochs = sorted(by_epoch)
        vals = [list(by_epoch[e].values()) for e in epochs]
        lines[row] = (epochs, [statistics.fmean(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals])
        seeds = sorted(by_epoch[epochs[-1]])
        early = {r.seed: float(r.score) * scale for r in records
                 if r.is_reported and not r.curve and r.seed in seeds and _same_run(r, first[row])}
        last = by_epoch[epochs[-1]]
        gap = [last[s] - early[s] for s in seeds if s in early]
        sd = statistics.stdev(last.values()) if len(last) > 1 else float("nan")
        rows.append(Row(row, [
            Value(", ".join(map(str, seeds))),
            Value("; ".join(f"{e}: {statistics.fmean(by_epoch[e].values()):.1f}" for e in epochs)),
            Value(f"{statistics.fmean(early.values()):.1f}" if early else "-"),
            Value(f"{statistics.fmean(gap):+.2f}" if gap else "-", statistics.fmean(gap) if gap else None),
            Value(f"{sd:.2f}", sd),
            Value(_cross_check(gap, sd)),
        ]))
    t.rows = rows
    t.notes.append("Every point of a line comes from the same runs: one schedule over all the epochs (warm-up, then "
                   "linear decay to 0 at the last epoch), scored after the listed epochs; early stopping off. The "
                   "cross-check: training on must not beat the early-stopped score by more than the seeds' SD.")
    plots.budget_curve(out / "budget_curve.png", lines, f"{metric} on {task} (x{scale:g})",
                       f"{task}: score by training budget, one schedule per run (mean, seed min-max)")
    return Section("Budget curve", [t], [Figure("budget_curve.png", "Score after epochs 1-16 of one 16-epoch "
                                                "schedule per method (not separate runs per budget); band: seeds")])


def _cross_check(gap: list[float], sd: float) -> str:
    """The gate's cross-check: the long run's last score may beat the early-stopped one by at most the seeds' SD."""
    if not gap or math.isnan(sd):
        return "-"
    mean = statistics.fmean(gap)
    return "passes" if mean <= sd else f"fails: training on gains {mean:+.2f} > SD {sd:.2f}"


def _same_run(r: Record, curve: Record) -> bool:
    """Whether `r` trains what the curve run `curve` trains (task, method, options, lr), early-stopped."""
    return (r.task, r.lr, r.spec.method, r.spec.options) == \
        (curve.task, curve.lr, curve.spec.method, curve.spec.options)


def runs_table(records: list[Record], design: C.Design) -> Table | None:
    """Per row: reported runs, those the failed-run rule flags, and those that kept their last epoch."""
    counts: dict[str, list[int]] = {}
    for r in records:
        if not r.is_reported:
            continue
        n = counts.setdefault(r.row, [0, 0, 0])
        n[0] += 1
        n[1] += C.failed_run(r, design)
        n[2] += C.kept_last(r)
    if not counts:
        return None
    t = Table("runs", "Reported runs per row: failed by the design's rule, and kept at their last epoch",
              ["Runs", "Failed", "Kept the last epoch"], label_header="Row")
    for row, (n, failed, last) in counts.items():
        flag = " (most: under-trained?)" if last * 2 > n else ""
        t.rows.append(Row(row, [Value(str(n), float(n)), Value(str(failed), float(failed)),
                                Value(f"{last}{flag}", float(last))]))
    return t


def _forest_rows(outs: list[C.Outcome]) -> list[tuple]:
    rows = []
    for o in outs:
        r = o.result
        if r is None:
            continue
        points = [("pooled", r.mean, r.ci_low, r.ci_high)]
        points += [(f"{task} (n={n})", m, lo, hi) for task, n, m, lo, hi in r.per_task] if len(r.per_task) > 1 else []
        rows.append((o.contrast.name, points, o.verdict))
    return rows


def forest_figures(outs: list[C.Outcome], out: Path, design: C.Design) -> list[Figure]:
    from lntune.report import plots  # lazy: matplotlib loads only when a figure is drawn

    figs = []
    scores = _forest_rows([o for o in outs if o.contrast.measure == C.SCORE])
    if scores:
        plots.forest(out / "forest.png", scores, design.margin, "paired difference A - B (points)")
        figs.append(Figure("forest.png", f"Paired differences A - B with {design.level:.0%} CIs, pooled (diamond) "
                           f"and per task; dashed: the ±{design.margin:g}-point equivalence margin"))
    times = _forest_rows([o for o in outs if o.contrast.measure != C.SCORE])
    if times:
        plots.forest(out / "forest_time.png", times, 0.0, "relative time difference A - B (% of B)")
        figs.append(Figure("forest_time.png", "Time contrasts: relative difference in % of B's time, pooled "
                           "(diamond) and per task"))
    return figs


def _mean_tables(records: list[Record], row: str, part: str) -> dict[str, dict[tuple, float]]:
    """Per task: the mean over the reported seeds of one change table of `row`'s runs."""
    sums: dict[str, dict[tuple, list[float]]] = {}
    for r in records:
        if r.row != row or r.picks_lr or not r.change:
            continue
        for *key, d in getattr(r.change, part):
            sums.setdefault(r.task, {}).setdefault(tuple(key), []).append(d)
    return {task: {k: sum(v) / len(v) for k, v in table.items()} for task, table in sums.items()}


def change_figures(records: list[Record], out: Path) -> list[Figure]:
    """002 fig. 1 from the full fine-tunes (row FT) and 000 fig. 3 from the LN runs (row LN) of this sweep."""
    from lntune.analyse.report import change_figures as draw  # lazy: matplotlib, only for figures

    full, ln = _mean_tables(records, "FT", "cells"), _mean_tables(records, "LN", "ln")
    if not (full and ln):
        return []
    folder = out / CHANGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    model = next(r.spec.model for r in records if r.change)
    draw(folder, full, ln, model, f"Change per component after full fine-tuning ({model}, mean over seeds)")
    return [Figure(f"{CHANGE_DIR}/change_heatmap.png", "Mean |after - before| per component and layer after full "
                   "fine-tuning (paper 002 fig. 1), from this sweep's FT runs at their chosen lr, mean over seeds"),
            Figure(f"{CHANGE_DIR}/ln_change.png", "Change of LN gain and bias per layer (paper 000 fig. 3), from "
                   "this sweep's LN runs, mean over seeds")]


def evidence_sections(records: list[Record], cells: list[Cell], out: Path, design_json: dict,
                      baseline: Path | None = None, coverage: dict | None = None) -> tuple[list[Section], dict]:
    """The sections, and claims rows for claims.csv / claims.json."""
    design = C.Design.from_json(design_json)
    outs = C.outcomes(cells, records, design)
    rows = C.claims_rows(outs, design)
    write_csv(out / "claims.csv", rows)
    write_json(out / "claims.json", {"design": design_json, "claims": rows})
    claims = [claims_table(outs, design)] + ([coverage_table(coverage)] if coverage else [])
    sections = [Section("The papers' claims, decided on paired runs", claims, forest_figures(outs, out, design))]
    if baseline is not None:
        sections.append(Section("What changed from the baseline", [baseline_table(baseline, outs, design)]))
    tables = [t for t in (lr_table(records, edges="lr_growth" in design_json), runs_table(records, design),
                          health_table(outs, records, design)) if t]
    if tables:
        sections.append(Section("Learning rates and run health", tables))
    if budget := budget_section(records, out):
        sections.append(budget)
    if figs := change_figures(records, out):
        sections.append(Section("What moves in fine-tuning (from this sweep's converged runs)", figures=figs))
    return sections, {"claims.csv": out / "claims.csv", "claims.json": out / "claims.json"}


def _brief(o: C.Outcome | None) -> str:
    if o is None:
        return "not run"
    r = o.result
    mean = "-" if r is None else f"{r.mean:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"
    p = "" if o.p_holm is None else f", Holm p {_p(o.p_holm)}"
    return f"{mean}{p}: {o.verdict}"


def baseline_table(baseline: Path, outs: list[C.Outcome], design: C.Design) -> Table:
    """Each contrast in the baseline as it was, the baseline re-analysed with this design's families (Holm within
    them), and here: so the effect of the families is told apart from the effect of everything else."""
    base_records = load_records(baseline)
    base_cells = aggregate(base_records)
    base_design = C.Design.from_json(read_design(baseline))
    as_was = {o.contrast.name: o for o in C.outcomes(base_cells, base_records, base_design)}
    refamilied = C.Design(base_design.margin, base_design.majority_margin, base_design.min_r, base_design.level,
                          families=design.families)
    regrouped = {o.contrast.name: o for o in C.outcomes(base_cells, base_records, refamilied)}
    here = {o.contrast.name: o for o in outs}
    t = Table("baseline", f"The baseline ({baseline.name}) as it was, re-analysed with this design's families, "
              "and here", ["Family", f"{baseline.name}", f"{baseline.name}, this design's families", "Here",
                           "What changed"], label_header="Contrast A - B")
    for name in dict.fromkeys([*here, *as_was]):
        a, b, c = as_was.get(name), regrouped.get(name), here.get(name)
        t.rows.append(Row(name, [Value(design.family(name) or "-"), Value(_brief(a)), Value(_brief(b)),
                                 Value(_brief(c)), Value(_change(a, b, c))]))
    t.notes.append("Mean paired difference [CI] in points (% for times), Holm p and verdict. 'Families' changes only "
                   "which p-values Holm adjusts together; 'the runs' covers everything else the two designs differ "
                   "in (convergence, lr grids, seeds, validation size).")
    return t


def _change(was: C.Outcome | None, regrouped: C.Outcome | None, here: C.Outcome | None) -> str:
    if was is None:
        return "new here"
    parts = []
    if regrouped is not None and regrouped.verdict != was.verdict:
        parts.append(f"families: {was.verdict} -> {regrouped.verdict}")
    if here is None:
        return "; ".join(parts + ["not run here: the baseline's runs stand"])
    before = regrouped.verdict if regrouped is not None else was.verdict
    if here.verdict != before:
        parts.append(f"the runs: {before} -> {here.verdict}")
    if was.result and here.result:
        unit = "points" if here.contrast.measure == C.SCORE else "percentage points"
        parts.append(f"mean {here.result.mean - was.result.mean:+.1f} {unit}")
    return "; ".join(parts) or "same verdict"
