import statistics

import numpy as np
import pytest
from scipy import stats

from lntune.report import build
from lntune.report.aggregate import aggregate
from lntune.report.stats import format_p, kruskal_wallis

from .records import record


def h_reference(*groups):
    """Kruskal-Wallis H by the textbook formula (no ties) and its chi-square p-value."""
    allv = sorted(v for g in groups for v in g)
    n = len(allv)
    rank = {v: i + 1 for i, v in enumerate(allv)}
    h = 12 / (n * (n + 1)) * sum(sum(rank[v] for v in g) ** 2 / len(g) for g in groups) - 3 * (n + 1)
    return h, stats.chi2.sf(h, len(groups) - 1)


def test_kruskal_equals_scipy_and_the_formula():
    # paper 002 table 2 (dev): LayerNorm and BitFit over nine GLUE metrics
    ln = [0.9072, 0.9312, 0.8285, 0.8348, 0.6412, 0.9130, 0.9039, 0.7401, 0.8361]
    bitfit = [0.9145, 0.9278, 0.8399, 0.8457, 0.6364, 0.9183, 0.9043, 0.7473, 0.8476]
    got = kruskal_wallis(ln, bitfit)
    want = stats.kruskal(ln, bitfit)
    assert got.statistic == pytest.approx(want.statistic) and got.pvalue == pytest.approx(want.pvalue)
    h, p = h_reference(ln, bitfit)
    assert got.statistic == pytest.approx(h) and got.pvalue == pytest.approx(p)
    assert format_p(got) == f"{p:.5f}"


def test_all_identical_values_are_not_an_error():
    r = kruskal_wallis([0.5, 0.5], [0.5, 0.5, 0.5])
    assert r.pvalue is None and format_p(r) == "n/a (all values equal)"
    assert kruskal_wallis([0.5], []).pvalue is None


SUBSET = {  # row -> method, task -> scores over three seeds
    "Full": ("full", {"a": [.91, .92, .90], "b": [.80, .81, .79], "c": [.60, .62, .61]}),
    "BitFit": ("bitfit", {"a": [.90, .89, .88], "b": [.78, .77, .80], "c": [.58, .57, .60]}),
    "LN": ("ln", {"a": [.89, .90, .91], "b": [.79, .78, .76], "c": [.59, .61, .55]}),
    "Random": ("random", {"a": [.85, .84, .83], "b": [.70, .72, .71], "c": [.50, .52, .51]}),
}


def test_subset_kruskal_rows_match_scipy_on_the_same_numbers():
    recs = [record(task=t, row=row, method=m, group="subset", seed=s, score=v, val=v)
            for row, (m, tasks) in SUBSET.items() for t, vals in tasks.items() for s, v in enumerate(vals)]
    cells = aggregate(recs)
    table = build.kruskal_table(cells)
    # LN and BitFit tie on task c (0.5833...), a tie float summation order can hide: means compare at 12 decimals
    means = {row: [round(statistics.mean(v), 12) for v in tasks.values()] for row, (_, tasks) in SUBSET.items()}
    rows = {(r.label, r.values[0].text): r for r in table.rows}
    across = "across 3 tasks (per-task means)"
    for name, groups in (("LN vs BitFit", ["LN", "BitFit"]), ("LN vs random", ["LN", "Random"]),
                         ("LN vs BitFit vs random", ["LN", "BitFit", "Random"])):
        want = stats.kruskal(*[means[g] for g in groups])
        got = rows[(name, across)]
        assert got.values[2].value == pytest.approx(want.statistic)
        assert got.values[3].value == pytest.approx(want.pvalue)
        for t in ("a", "b", "c"):  # per task across seeds
            want = stats.kruskal(*[SUBSET[g][1][t] for g in groups])
            assert rows[(name, f"{t}, over seeds")].values[3].value == pytest.approx(want.pvalue)
    assert len(table.rows) == 3 * 4
    sub = build.subset_table(cells)
    assert [r.label for r in sub.rows] == ["Full", "BitFit", "LN", "Random"]
    assert sub.cell("Full", "a").value == pytest.approx(100 * np.mean(SUBSET["Full"][1]["a"]))


def test_no_per_seed_test_with_one_seed_and_identical_groups_say_so():
    recs = [record(task=t, row=row, method=row.lower(), group="subset", score=0.7, val=0.7)
            for row in ("LN", "BitFit") for t in ("a", "b")]
    table = build.kruskal_table(aggregate(recs))
    [row] = table.rows
    assert row.values[0].text.startswith("across") and row.values[3].text == "n/a (all values equal)"


def test_subset_borrows_full_bitfit_and_ln_from_main():
    # the sweep runs a spec shared by two groups once, under the first: only Random is in the subset group
    recs = [record(task=t, row=row, method=m, group="subset" if m == "random" else "main", seed=s, score=v, val=v)
            for row, (m, tasks) in SUBSET.items() for t, vals in tasks.items() for s, v in enumerate(vals)]
    recs.append(record(task="a", row="Only bias", method="ln", options={"terms": "bias"}, score=.1))  # not plain LN
    cells = aggregate(recs)
    sub = build.subset_table(cells)
    assert [r.label for r in sub.rows] == ["Full", "BitFit", "LN", "Random"]
    assert any("Full, BitFit, LN" in n for n in sub.notes)
    kw = build.kruskal_table(cells)
    got = next(r for r in kw.rows if r.label == "LN vs random" and r.values[0].text.startswith("across"))
    want = stats.kruskal([round(statistics.mean(v), 12) for v in SUBSET["LN"][1].values()],
                         [round(statistics.mean(v), 12) for v in SUBSET["Random"][1].values()])
    assert got.values[3].value == pytest.approx(want.pvalue)
