import json
import re
import statistics

import pytest
from typer.testing import CliRunner

from lntune.cli import app

from .records import efficiency, record, write_store

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, ["report", *[str(a) for a in args]])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A small store feeding every table: main, unified, ablation, subset, fraction, efficiency."""
    recs = []
    for row, method, base in (("FT", "full", .85), ("BitFit", "bitfit", .80), ("LN", "ln", .82),
                              ("Random", "random", .70)):
        for t in ("sst2", "rte"):
            for seed in (1, 2):
                s = base + seed / 100 + (t == "rte") / 10
                recs.append(record(task=t, row=row, method=method, seed=seed, score=s, val=s))
                recs.append(record(task=t, row=row, method=method, group="subset", seed=seed, score=s, val=s))
    for row, method, s in (("Prefix", "prefix", .81), ("Prefix+LN", "prefix+ln", .83)):
        recs += [record(task=t, row=row, method=method, group="unified", score=s, val=s) for t in ("sst2", "rte")]
    recs += [record(task=t, row="Only bias", options={"terms": "bias"}, group="ablation", score=.78)
             for t in ("sst2", "rte")]
    recs += [record(group="fraction", row=f"{k} {f}", mask={"kind": k, "fraction": f}, score=f / 2 + .4, val=.5)
             for k in ("individual", "global") for f in (.1, .5)]
    recs += [efficiency("full", "FT", 1.0, .2, 2000), efficiency("ln", "LN", .5, .2, 1000)]
    return write_store(tmp_path_factory.mktemp("results"), recs)


@pytest.fixture(scope="module")
def written(store, tmp_path_factory):
    figs = tmp_path_factory.mktemp("analysis")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(figs / "change_heatmap.png")
    plt.close(fig)
    code, text = run(store, "--figures", figs)
    assert code == 0, text
    return store / "report", text


def test_cli_writes_report_tables_and_figures(written):
    out, text = written
    for name in ("report.md", "report.html", "cells.csv", "fraction_curves.png", "efficiency.png"):
        assert (out / name).stat().st_size > 0, name
    for table in ("findings", "main", "unified", "ablation", "subset", "subset_kruskal", "fraction", "efficiency"):
        assert (out / f"{table}.csv").exists() and table in text
        assert json.loads((out / f"{table}.json").read_text())["name"] == table
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temp files


def test_markdown_has_marks_and_figures(written):
    md = (written[0] / "report.md").read_text()
    sd = statistics.stdev([1, 2])  # seeds add 0.01 and 0.02: std 0.7 after x100
    ln = [100 * (.82 + .015 + dt) for dt in (0, .1)]  # LN second to FT everywhere: underlined
    want = (f"| LN | 0.04% | <ins>{ln[0]:.1f} ± {sd:.1f}</ins> | <ins>{ln[1]:.1f} ± {sd:.1f}</ins> | "
            f"<ins>{statistics.mean(ln):.1f}</ins> |")
    assert want in md
    assert f"**{100 * (.85 + .015):.1f} ± {sd:.1f}**" in md  # FT best on sst2
    assert "![change_heatmap.png](figures/" in md and "(+2.0)" in md


def test_html_is_self_contained_and_holds_the_tables(written):
    html = (written[0] / "report.html").read_text()
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "<link" not in html
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    for table in ("findings", "main", "unified", "ablation", "subset", "subset_kruskal", "fraction", "efficiency"):
        assert f'<table id="{table}">' in html
    assert "<b>86.5 ± 0.7</b>" in html and '<span class="delta good">(+2.0)</span>' in html
    assert "change_heatmap.png" in html


def test_missing_store_is_a_clear_error(tmp_path):
    code, text = run(tmp_path / "none")
    assert code == 2 and "no results store" in text and "none" in text


def test_the_header_sums_worker_time_and_merges_run_intervals_into_wall_time():
    from lntune.report.report import compute

    from .records import edit

    def ran(end: str, seconds: float):
        return edit(record(), finished_at=f"2026-01-01T{end}Z", train_seconds=seconds)

    # two runs side by side 00:00-01:00 and 00:30-01:30, then one alone 02:00-03:00: 3 h of work, 2.5 h of wall
    recs = [ran("01:00:00", 3600), ran("01:30:00", 3600), ran("03:00:00", 3600)]
    assert compute(recs).startswith("3.0 worker-hours over 3 runs, 2.5 hours of wall time")
    assert compute([edit(record(), finished_at="")]) == "not recorded"
