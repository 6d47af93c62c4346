"""Turn analysis results into figures plus the numbers behind them (CSV/JSON next to each PNG)."""

from __future__ import annotations

from pathlib import Path

from lntune.analyse import plots
from lntune.analyse.change import Change, cell_table, ln_row_label, ln_table, ranking
from lntune.analyse.components import NO_LAYER, layer_label
from lntune.analyse.files import write_bytes, write_csv, write_json
from lntune.analyse.fisher import TaskFisher, fisher_ranking, ln_shares


def markdown(rows: list[dict], digits: int = 4) -> str:
    cols = list(rows[0])
    cell = lambda v: f"{v:.{digits}g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_table(out: Path, stem: str, rows: list[dict]) -> None:
    write_csv(out / f"{stem}.csv", rows)
    write_bytes(out / f"{stem}.md", markdown(rows).encode())


def _unique_labels(changes: list[Change]) -> list[Change]:
    """Panels are keyed by task: two runs of one task (full vs LN, say) get their folder names added."""
    seen = [c.task for c in changes]
    return [
        Change(f"{c.task} ({Path(c.source).name})", c.source, c.model, c.rows) if seen.count(c.task) > 1 else c
        for c in changes
    ]


def report_change(changes: list[Change], out: str | Path) -> list[dict]:
    """change_heatmap, ln_change (PNG + CSV), change_ranking (CSV + MD), change.json; returns the ranking."""
    out, changes = Path(out), _unique_labels(changes)
    change_figures(out, {c.task: cell_table(c.rows) for c in changes}, {c.task: ln_table(c.rows) for c in changes},
                   changes[0].model)
    table = ranking(changes)
    write_table(out, "change_ranking", table)
    write_json(
        out / "change.json",
        {"model": changes[0].model, "runs": [{"task": c.task, "source": c.source} for c in changes]},
    )
    return table


def _table_layers(tables: dict[str, dict]) -> list:
    """Block indices in order, then None (outside the blocks) when any value sits there; the layer is a key's last."""
    found = {k[-1] for v in tables.values() for k in v}
    return sorted(x for x in found if x is not None) + ([None] if None in found else [])


def change_figures(out: Path, cells: dict[str, dict], lns: dict[str, dict], model: str, title: str = "") -> None:
    """change_heatmap and ln_change (PNG + CSV) from D tables per panel: {(component, layer): D} and
    {(norm, term, layer): D}, as cell_table and ln_table return them (or as a sweep's records keep them)."""
    layers = _table_layers(cells)
    cols = [layer_label(x) for x in layers]
    comps = list(dict.fromkeys(comp for v in cells.values() for comp, _ in v))
    plots.heatmap_panels(
        out / "change_heatmap.png",
        [(t, plots.grid(v, comps, layers)) for t, v in cells.items()],
        comps,
        cols,
        f"layer ({NO_LAYER}: outside the blocks)",
        "component",
        "D = mean |after - before|",
        title or f"Change per component after fine-tuning ({model})",
    )
    write_csv(
        out / "change_heatmap.csv",
        [
            {"task": t, "component": comp, "layer": layer_label(layer), "D": d}
            for t, v in cells.items()
            for (comp, layer), d in v.items()
        ],
    )
    _report_ln_change(lns, out, _table_layers(lns))


def _report_ln_change(tables: dict[str, dict], out: Path, layers: list) -> None:
    cols = [layer_label(x) for x in layers]
    keys = list(dict.fromkeys((norm, term) for v in tables.values() for norm, term, _ in v))
    keys.sort(key=lambda k: (k[1] != "weight", k[0] in ("embeddings", "final")))  # gains first, block norms first
    labels = [ln_row_label(*k) for k in keys]
    panels = [
        (t, plots.grid({(ln_row_label(n, term), layer): d for (n, term, layer), d in v.items()}, labels, layers))
        for t, v in tables.items()
    ]
    plots.heatmap_panels(
        out / "ln_change.png",
        panels,
        labels,
        cols,
        f"layer ({NO_LAYER}: outside the blocks)",
        "LN term",
        "mean |after - before|",
        "Change in LayerNorm gain and bias per layer",
    )
    write_csv(
        out / "ln_change.csv",
        [
            {"task": t, "norm": n, "term": term, "layer": layer_label(layer), "D": d}
            for t, v in tables.items()
            for (n, term, layer), d in v.items()
        ],
    )


def report_fisher(results: list[TaskFisher], out: str | Path) -> list[dict]:
    """fisher_ranking (all components) and fisher_ranking_blocks (paper 002 table 1), CSV + MD;
    fisher_ln (PNG + CSV); fisher_params.csv. Returns the blocks-only ranking."""
    out = Path(out)
    write_table(out, "fisher_ranking", fisher_ranking(results))
    table = fisher_ranking(results, blocks_only=True)
    write_table(out, "fisher_ranking_blocks", table)
    shares = {r.task: ln_shares(r) for r in results}
    positions = list(dict.fromkeys(p for v in shares.values() for _, p in v))
    positions.sort(key=lambda p: (p != "embeddings", p == "final", int(p) if p.isdigit() else 0))
    tasks = [r.task for r in results]
    terms = [t for t in ("weight", "bias") if any(k[0] == t for v in shares.values() for k in v)]
    panels = [
        (
            f"LN {'gain' if term == 'weight' else term}",
            plots.grid(
                {(p, t): shares[t].get((term, p), float("nan")) for t in tasks for p in positions}, positions, tasks
            ),
        )
        for term in terms
    ]
    plots.heatmap_panels(
        out / "fisher_ln.png",
        panels,
        positions,
        tasks,
        "task",
        "layer",
        "share of the task's LN Fisher",
        f"Fisher information of LayerNorm per layer ({results[0].model}, N={results[0].config.examples})",
    )
    write_csv(
        out / "fisher_ln.csv",
        [{"task": t, "term": term, "position": p, "share": v} for t, s in shares.items() for (term, p), v in s.items()],
    )
    write_csv(out / "fisher_params.csv", [{"task": r.task, **row} for r in results for row in r.rows])
    return table


def report_curve(rows: list[dict], out: str | Path) -> Path:
    """curve.png (metric vs fraction, one panel per task, one line per mask kind) with curve.csv/json."""
    out = Path(out)
    write_json(out / "curve.json", rows)
    write_csv(out / "curve.csv", rows)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    panels, ylabels = [], []
    for t in tasks:
        mine = [r for r in rows if r["task"] == t]
        lines = {}
        for kind in dict.fromkeys(r["kind"] for r in mine):
            pts = sorted((r["fraction"], r["value"]) for r in mine if r["kind"] == kind)
            lines[kind] = ([x for x, _ in pts], [y for _, y in pts])
        panels.append((t, lines))
        ylabels.append(f"dev {mine[0]['metric']}")
    return plots.line_panels(
        out / "curve.png", panels, "fraction f of LN elements trained", ylabels, "LN-tuning with Fisher masks"
    )
