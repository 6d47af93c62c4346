"""`lntune report RESULTS`: the papers' tables and figures from a results store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lntune.errors import LntuneError


def report_cmd(
    results: Path = typer.Argument(
        ..., metavar="RESULTS", help="results store folder (holds records.jsonl) written by lntune sweep"
    ),
    out: Optional[Path] = typer.Option(None, metavar="DIR", help="folder for the report (default RESULTS/report)"),
    figures: list[Path] = typer.Option(
        [], "--figures", metavar="DIR", help="folder of analysis PNGs to embed (e.g. docs/analysis/change); repeatable"
    ),
    baseline: Optional[Path] = typer.Option(
        None, metavar="RESULTS", help="an earlier results store of the same contrasts (e.g. docs/results/paper_cpu): "
                                      "a table of its verdicts, re-analysed with this design's families, beside these"),
) -> None:
    """Markdown and self-contained HTML tables (main, unified, ablation, subset + Kruskal-Wallis, fraction
    curves, efficiency) with their CSV/JSON and figures."""
    from lntune.report.report import write_report

    try:
        written = write_report(results, out, figures, baseline)
    except LntuneError as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(2)
    folder = written["report.md"].parent
    tables = sorted(k[:-4] for k in written if k.endswith(".csv") and k != "cells.csv")
    typer.echo(f"tables: {', '.join(tables) or 'none'}")
    typer.echo(f"wrote {folder}/report.md, report.html and {len(written) - 2} CSV/JSON files")
