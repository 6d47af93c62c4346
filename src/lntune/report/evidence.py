"""The report's evidence sections for a sweep run with an analysis plan (RESULTS/design.json): the registered
contrasts with their verdicts (lntune.report.claims), a forest plot, the lr each method was given, the runs the
design's rules flag, and the parameter-change figures drawn from the sweep's own converged runs."""

from __future__ import annotations

import json
from pathlib import Path

from lntune.analyse.files import write_csv, write_json
from lntune.report import claims as C
from lntune.report.aggregate import Cell
from lntune.report.document import Figure, Section
from lntune.report.tables import Row, Table, Value

DESIGN = "design.json"
CHANGE_DIR = "change"


def read_design(results: Path) -> dict | None:
    path = Path(results) / DESIGN
    return json.loads(path.read_text()) if path.is_file() else None


def _p(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}" if x >= 1e-3 else f"{x:.1e}"


def claims_table(outs: list[C.Outcome], design: C.Design) -> Table:
    unit = lambda o: "%" if o.contrast.measure != C.SCORE else ""  # noqa: E731 - time contrasts are relative
    t = Table("claims_table", "The registered contrasts: paired differences A - B and verdicts",
              ["Claim (source)", "Tasks", "Pairs", f"Mean [{design.level:.0%} CI]", "p (Holm)", "TOST p (Holm)",
               "Verdict", "Qualifiers"], label_header="Contrast A - B")
    for o in outs:
        r = o.result
        ci = "-" if r is None else f"{r.mean:+.2f}{unit(o)} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        t.rows.append(Row(o.contrast.name, [
            Value(f"{o.contrast.claim.statement} ({o.contrast.claim.source})"),
            Value(", ".join(o.tasks) or "-"), Value(str(o.pairs), float(o.pairs)),
            Value(ci, r.mean if r else None),
            Value(f"{_p(r.p if r else None)} ({_p(o.p_holm)})", o.p_holm),
            Value(f"{_p(r.p_equiv if r else None)} ({_p(o.p_equiv_holm)})", o.p_equiv_holm),
            Value(f"{o.verdict}: {o.reason}" if o.reason else o.verdict),
            Value("; ".join(o.flags + ([o.contrast.note] if o.contrast.note else [])) or "-"),
        ]))
    t.notes += [
        "Differences are A - B per (task, seed) on the table scale (x100 for 0-1 metrics); time contrasts are the "
        "relative difference in % of B's time. The mean weighs tasks equally; the CI is a bootstrap stratified by task.",
        "p: exact sign-flip permutation test stratified by task (Monte Carlo above 16 pairs); Holm over all the "
        f"contrasts listed. TOST: two one-sided sign-flip tests of |difference| >= {design.margin:g} points, Holm "
        "over the contrasts too. 'holds' needs Holm p < 0.05 in the claimed direction.",
        f"A run failed when its validation accuracy was within {design.majority_margin:g} points of the majority "
        f"rate, or its validation Pearson r was below {design.min_r:g}; verdicts use every run, the qualifiers give "
        "the result without the pairs a failed run is in.",
    ]
    return t


def lr_table(records: list[dict]) -> Table | None:
    rows = C.lr_choices(records)
    if not rows:
        return None
    t = Table("lr_choice", "Learning rate chosen by the lr seed (validation score per lr tried)",
              ["Task", "Validation score by lr", "Used by the reported seeds"], label_header="Row")
    for r in rows:
        tried = ", ".join(f"{lr}: {'-' if v is None else f'{v:.4f}'}" for lr, v in r["tried"].items())
        t.rows.append(Row(r["row"], [Value(r["task"]), Value(tried), Value(r["chosen"])]))
    return t


def runs_table(records: list[dict], design: C.Design) -> Table | None:
    """Per row: reported runs, those the failed-run rule flags, and those that kept their last epoch."""
    counts: dict[str, list[int]] = {}
    for r in records:
        if r.get("picks_lr") or r.get("score") is None or (r.get("spec") or {}).get("kind") == "efficiency":
            continue
        n = counts.setdefault(r["row"], [0, 0, 0])
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
    from lntune.report import plots

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


def _mean_tables(records: list[dict], row: str, part: str) -> dict[str, dict[tuple, float]]:
    """Per task: the mean over the reported seeds of one change table of `row`'s runs."""
    sums: dict[str, dict[tuple, list[float]]] = {}
    for r in records:
        if r.get("row") != row or r.get("picks_lr") or not r.get("change"):
            continue
        for *key, d in r["change"][part]:
            sums.setdefault(r["task"], {}).setdefault(tuple(key), []).append(d)
    return {task: {k: sum(v) / len(v) for k, v in table.items()} for task, table in sums.items()}


def change_figures(records: list[dict], out: Path) -> list[Figure]:
    """002 fig. 1 from the full fine-tunes (row FT) and 000 fig. 3 from the LN runs (row LN) of this sweep."""
    from lntune.analyse.report import change_figures as draw

    full, ln = _mean_tables(records, "FT", "cells"), _mean_tables(records, "LN", "ln")
    if not (full and ln):
        return []
    folder = out / CHANGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    model = next(str((r.get("spec") or {}).get("model", "?")) for r in records if r.get("change"))
    draw(folder, full, ln, model, f"Change per component after full fine-tuning ({model}, mean over seeds)")
    return [Figure(f"{CHANGE_DIR}/change_heatmap.png", "Mean |after - before| per component and layer after full "
                   "fine-tuning (paper 002 fig. 1), from this sweep's FT runs at their chosen lr, mean over seeds"),
            Figure(f"{CHANGE_DIR}/ln_change.png", "Change of LN gain and bias per layer (paper 000 fig. 3), from "
                   "this sweep's LN runs, mean over seeds")]


def evidence_sections(records: list[dict], cells: list[Cell], out: Path, design_json: dict) -> tuple[list[Section], dict]:
    """The sections, and claims rows for claims.csv / claims.json."""
    design = C.Design.from_json(design_json)
    outs = C.outcomes(cells, records, design)
    rows = C.claims_rows(outs, design)
    write_csv(out / "claims.csv", rows)
    write_json(out / "claims.json", {"design": design_json, "claims": rows})
    sections = [Section("The papers' claims, decided on paired runs", [claims_table(outs, design)],
                        forest_figures(outs, out, design))]
    tables = [t for t in (lr_table(records), runs_table(records, design)) if t]
    if tables:
        sections.append(Section("Learning rates and run health", tables))
    if figs := change_figures(records, out):
        sections.append(Section("What moves in fine-tuning (from this sweep's converged runs)", figures=figs))
    return sections, {"claims.csv": out / "claims.csv", "claims.json": out / "claims.json"}
