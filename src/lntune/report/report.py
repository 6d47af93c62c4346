"""Build the whole report of a results store: tables (Markdown, HTML, CSV, JSON), figures, all written atomically."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from lntune.analyse.files import write_bytes, write_csv, write_json
from lntune.errors import LntuneError
from lntune.report import build, html, markdown, plots
from lntune.report.aggregate import Cell, aggregate, load_records
from lntune.report.document import Document, Figure, Section
from lntune.report.efficiency import efficiency_rows, efficiency_table
from lntune.report.evidence import evidence_sections, read_coverage, read_design
from lntune.report.findings import findings_table
from lntune.report.tables import Table
from lntune.spec.records import Record

REPORT_DIR = "report"


def _distinct(records: list[Record], key) -> list[str]:
    return list(dict.fromkeys(str(v) for r in records if (v := key(r)) is not None))


def header(records: list[Record], cells: list[Cell]) -> list[tuple[str, str]]:
    train = [r for r in records if not r.is_timing]
    finished = sorted(r.finished_at for r in records if r.finished_at)
    return [
        ("Sweep", ", ".join(_distinct(records, lambda r: r.sweep)) or "?"),
        ("Records", f"{len(records)} ({len(train)} training runs in {len(cells)} cells, "
                    f"{len(records) - len(train)} efficiency runs)"),
        ("Models", ", ".join(_distinct(records, lambda r: r.spec.model)) or "?"),
        ("Commits", ", ".join(_distinct(records, lambda r: r.commit)) or "not recorded"),
        ("Machines", "; ".join(_distinct(records, lambda r: r.machine)) or "not recorded"),
        ("Runs finished", f"{finished[0]} to {finished[-1]}" if finished else "not recorded"),
        ("Compute", compute(records)),
        ("Report written", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]


def compute(records: list[Record]) -> str:
    """Worker time (every run's training time summed) and wall time (the runs' intervals merged: the time at
    least one run was going), from each record's finish time and training seconds."""
    spans = sorted((end - r.train_seconds, end) for r in records if r.finished_at and r.train_seconds
                   and (end := datetime.fromisoformat(r.finished_at.replace("Z", "+00:00")).timestamp()))
    if not spans:
        return "not recorded"
    wall, (start, stop) = 0.0, spans[0]
    for a, b in spans[1:]:
        if a > stop:
            wall, start = wall + stop - start, a
        stop = max(stop, b)
    wall += stop - start
    work = sum(b - a for a, b in spans)
    return (f"{work / 3600:.1f} worker-hours over {len(spans)} runs, {wall / 3600:.1f} hours of wall time with at "
            "least one run going (each run's training time, evaluations included; model loading and final "
            "scoring not)")


def _analysis_figures(dirs: list[Path], out: Path) -> list[Figure]:
    """Copy every PNG of each --figures folder beside the report (the Markdown links to the copies)."""
    figures = []
    for d in dirs:
        if not Path(d).is_dir():
            raise LntuneError(f"--figures {d}: not a folder; pass a folder of PNGs such as docs/analysis/change")
        for png in sorted(Path(d).glob("*.png")):
            name = f"figures/{re.sub(r'[^A-Za-z0-9_.-]+', '_', Path(d).name)}-{png.name}"
            write_bytes(out / name, png.read_bytes())
            figures.append(Figure(name, png.name))
    return figures


def build_document(records: list[Record], cells: list[Cell], out: Path, figure_dirs: list[Path] = (),
                   design: dict | None = None, baseline: Path | None = None,
                   coverage: dict | None = None) -> tuple[Document, list[Table]]:
    """Tables and figures of every group present (figures are written into `out` as they are made).

    A sweep with an analysis plan (`design`, RESULTS/design.json) gets the registered contrasts decided on
    paired runs; one without gets the descriptive findings check (means compared, no test). `coverage` is the
    seed rule's simulated coverage (RESULTS/sequential_coverage.json), shown beside the contrasts."""
    doc = Document(f"lntune report: {', '.join(_distinct(records, lambda r: r.sweep)) or 'results'}",
                   header(records, cells))
    if design is not None:
        doc.sections += evidence_sections(records, cells, out, design, baseline, coverage)[0]
    elif baseline is not None:
        raise LntuneError("--baseline compares registered contrasts: these results have no design.json")
    elif t := findings_table(cells, records):
        doc.sections.append(Section("The papers' findings, checked", [t]))
    if main := build.main_tables(cells):
        doc.sections.append(Section("Main results (paper 000 tables 1-2)", main))
    if t := build.unified_table(cells):
        doc.sections.append(Section("Unified framework (paper 000 table 3)", [t]))
    if t := build.ablation_table(cells):
        doc.sections.append(Section("Ablation (paper 000 table 4)", [t]))
    if t := build.subset_table(cells):
        doc.sections.append(Section("LN vs BitFit vs random subset (paper 002 table 2)",
                                    [t] + [k for k in [build.kruskal_table(cells)] if k]))
    if series := build.fraction_series(cells):
        plots.fraction_curves(out / "fraction_curves.png", series)
        doc.sections.append(Section("Fraction of LN trained (paper 002 fig. 5)",
                                    [t for t in [build.fraction_table(cells)] if t],
                                    [Figure("fraction_curves.png", "Score vs fraction of LN elements trained, "
                                            "mean ± std over seeds, per mask kind")]))
    if t := efficiency_table(records):
        plots.efficiency_bars(out / "efficiency.png", efficiency_rows(records))
        doc.sections.append(Section("Efficiency (paper 000 fig. 2)", [t], [Figure(
            "efficiency.png", "Train step, inference batch and peak memory per method (FT = 100 where measured)")]))
    if others := build.other_tables(cells):
        doc.sections.append(Section("Other groups", others))
    if figs := _analysis_figures(list(figure_dirs), out):
        doc.sections.append(Section("Analysis figures", figures=figs))
    notes = build.seed_notes(cells)
    doc.sections.append(Section("Notes", notes=[
        "Each cell keeps the lr with the best mean validation score over seeds (ties: the earlier lr in the "
        "method's priority list) and reports the test score at that lr; cells.csv lists every lr tried.",
        *(["Cells with fewer seeds than others in their group: " + "; ".join(notes) + "."] if notes
          else ["Every cell of a group has the same number of seeds."]),
    ]))
    tables = [t for s in doc.sections for t in s.tables]
    return doc, tables


def write_report(results: str | Path, out: str | Path | None = None, figures: list[Path] = (),
                 baseline: str | Path | None = None) -> dict[str, Path]:
    """RESULTS/report/: report.md, report.html, PNG figures, one CSV and JSON per table and cells.csv."""
    results = Path(results)
    records = load_records(results)
    out = Path(out) if out is not None else results / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    cells = aggregate(records)
    design = read_design(results)
    doc, tables = build_document(records, cells, out, figures, design, Path(baseline) if baseline else None,
                                 read_coverage(results))
    written = {}
    if design is not None:
        written.update({k: out / k for k in ("claims.csv", "claims.json")})
    for t in tables:
        written[f"{t.name}.csv"] = write_csv(out / f"{t.name}.csv", t.to_csv_rows())
        written[f"{t.name}.json"] = write_json(out / f"{t.name}.json", t.to_json())
    written["cells.csv"] = write_csv(out / "cells.csv", [c.summary() for c in cells])
    written["report.md"] = write_bytes(out / "report.md", markdown.render(doc).encode())
    written["report.html"] = write_bytes(out / "report.html", html.render(doc, out).encode())
    return written
