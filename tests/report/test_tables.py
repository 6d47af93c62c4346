import statistics

import pytest

from lntune.report import build
from lntune.report.aggregate import aggregate
from lntune.report.efficiency import efficiency_table
from lntune.report.markdown import table_md
from lntune.report.tables import BEST, SECOND, Value, fmt_pct, mark

from .records import edit, efficiency, record

# row -> task -> test scores over seeds; t2's metric is a loss (lower is better); D has no t3 (like 3V).
SCORES = {
    "A": {"t1": [0.80, 0.82], "t2": [1.5], "t3": [0.70]},
    "B": {"t1": [0.90, 0.90], "t2": [1.2], "t3": [0.60]},
    "C": {"t1": [0.91, 0.89], "t2": [2.0], "t3": [0.75]},
    "D": {"t1": [0.85, 0.85], "t2": [1.2]},
}
METRIC = {"t1": "accuracy", "t2": "loss", "t3": "accuracy"}
SCALE = {"t1": 100, "t2": 1, "t3": 100}
DEC = {"t1": 1, "t2": 2, "t3": 1}


def main_records(group="main", scores=SCORES, methods=None):
    return [record(task=t, row=row, method=(methods or {}).get(row, row.lower()), group=group, seed=s,
                   score=v, val=v, metric=METRIC.get(t, "accuracy"))
            for row, tasks in scores.items() for t, vals in tasks.items() for s, v in enumerate(vals)]


def expected_marks(values: dict, higher: bool, dec: int) -> dict:
    """Reference: rank the distinct rounded values; best = first, second = next."""
    shown = {k: round(v, dec) for k, v in values.items()}
    distinct = sorted(set(shown.values()), reverse=higher)
    return {k: BEST if v == distinct[0] else SECOND if len(distinct) > 1 and v == distinct[1] else ""
            for k, v in shown.items()}


def test_main_table_bold_and_underline_land_on_the_right_cells():
    [table] = build.main_tables(aggregate(main_records()))
    assert table.columns == ["#Para.", "t1", "t2", "t3", "Avg."]
    for t in ("t1", "t2", "t3"):
        means = {r: statistics.mean(s[t]) * SCALE[t] for r, s in SCORES.items() if t in s}
        want = expected_marks(means, METRIC[t] != "loss", DEC[t])
        assert {r: table.cell(r, t).mark for r in means} == want, t
    # spelled out: B and C tie for best t1 (both 90.0), the loss column's lowest (B, D tie) is bold.
    assert table.cell("B", "t1").mark == table.cell("C", "t1").mark == BEST
    assert table.cell("D", "t1").mark == SECOND
    assert table.cell("B", "t2").mark == table.cell("D", "t2").mark == BEST
    assert table.cell("A", "t2").mark == SECOND


def test_main_table_values_average_and_missing_task_footnote():
    [table] = build.main_tables(aggregate(main_records()))
    a = table.cell("A", "t1")
    assert a.text == f"{statistics.mean([80, 82]):.1f} ± {statistics.stdev([80, 82]):.1f}"
    avgs = {r: statistics.mean([statistics.mean(s["t1"]) * 100, statistics.mean(s["t3"]) * 100])
            for r, s in SCORES.items() if "t3" in s}  # the loss task is not averaged
    for r, v in avgs.items():
        assert table.cell(r, "Avg.").value == pytest.approx(v)
    assert {r: table.cell(r, "Avg.").mark for r in avgs} == expected_marks(avgs, True, 1)
    d = table.cell("D", "Avg.")
    assert d.value is None and d.note == "*"
    assert any("D (no t3)" in n for n in table.notes)
    assert any("lower-is-better" in n and "t2" in n for n in table.notes)
    md = table_md(table)
    assert "| B | 0.04% | **90.0 ± 0.0** | **1.20** |" in md  # t2 has one seed: no ±
    assert "<ins>85.0 ± 0.0</ins>" in md


def test_mark_compares_values_as_displayed():
    vals = [Value(value=81.23), Value(value=81.24), Value(value=80.0), Value()]
    mark(vals, True, 1)
    assert [v.mark for v in vals] == [BEST, BEST, SECOND, ""]


def test_sections_per_model_mark_within_their_block():
    recs = main_records(scores={"A": {"t1": [0.8]}, "B": {"t1": [0.7]}})
    recs += [edit(r, spec={**r.spec.as_json(), "model": "big"}, key=r.key + "b")
             for r in main_records(scores={"A": {"t1": [0.5]}, "B": {"t1": [0.6]}})]
    [table] = build.main_tables(aggregate(recs))
    labels = [(r.label, r.section) for r in table.rows]
    assert labels == [("minilm", True), ("A", False), ("B", False), ("big", True), ("A", False), ("B", False)]
    assert [v.mark for v in table.column("t1") if v] == [BEST, SECOND, SECOND, BEST]


def test_nlg_table_has_every_generation_metric_and_the_mean_rank():
    gen = {"FT": {"bleu": 65.0, "nist": 8.6, "ter": 50.0}, "LN": {"bleu": 64.0, "nist": 8.7, "ter": 55.0},
           "BitFit": {"bleu": 60.0, "nist": 8.1, "ter": 45.0}}
    recs = [record(task="e2e", task_kind="nlg", metric="bleu", row=r, method=r.lower(), score=m["bleu"],
                   val=m["bleu"], test=dict(m, loss=1.0)) for r, m in gen.items()]
    [table] = build.main_tables(aggregate(recs))
    assert table.name == "main_nlg"
    assert table.columns == ["#Para.", "e2e BLEU", "e2e NIST", "e2e TER ↓", "Rank ↓"]

    def rank(row, metric, higher):  # distinct values: 1 + how many rows are better
        return 1 + sum((o[metric] > gen[row][metric]) if higher else (o[metric] < gen[row][metric])
                       for o in gen.values())
    for r in gen:
        want = statistics.mean([rank(r, "bleu", True), rank(r, "nist", True), rank(r, "ter", False)])
        assert table.cell(r, "Rank ↓").value == pytest.approx(want)
    assert table.cell("BitFit", "e2e TER ↓").mark == BEST  # lowest TER
    assert table.cell("FT", "e2e BLEU").text == "65.00 ± 0.00"


UNI = {"Prefix": [0.80, 0.82], "Prefix+LN": [0.85, 0.86], "Seq": [0.70, 0.72], "Seq+LN": [0.69, 0.69]}
METHODS = {"Prefix": "prefix", "Prefix+LN": "prefix+ln", "Seq": "seq_adapter_mha", "Seq+LN": "seq_adapter_mha+ln"}


def test_unified_deltas_pair_x_with_x_plus_ln():
    # Prefix comes from the main group (as paper 000 table 3 reuses table 1), Seq from the unified group.
    recs = main_records(scores={"Prefix": {"t1": UNI["Prefix"], "t3": [0.5]}}, methods=METHODS)
    recs += main_records("unified", {r: {"t1": v, "t3": [0.6]} for r, v in UNI.items() if r != "Prefix"}, METHODS)
    table = build.unified_table(aggregate(recs))
    assert [r.label for r in table.rows] == ["Seq", "Seq+LN", "Prefix", "Prefix+LN"]
    for x in ("Prefix", "Seq"):
        v = table.cell(x + "+LN", "t1")
        assert v.delta == pytest.approx(100 * (statistics.mean(UNI[x + "+LN"]) - statistics.mean(UNI[x])))
        assert table.cell(x, "t1").delta is None
    assert table.cell("Prefix+LN", "t1").good is True and table.cell("Seq+LN", "t1").good is False
    assert table.cell("Prefix+LN", "t1").delta_text == "+4.5"
    avg_delta = statistics.mean([85.5, 60.0]) - statistics.mean([81.0, 50.0])
    assert table.cell("Prefix+LN", "Avg.").delta == pytest.approx(avg_delta)
    assert table.cell("Prefix+LN", "Avg.").mark == BEST and table.cell("Prefix", "Avg.").mark == ""
    assert any("Prefix" in n and "main" in n for n in table.notes)
    assert "(+4.5)" in table_md(table)


def test_ablation_deltas_vs_full_ln_of_the_main_group():
    recs = main_records(scores={"LN": {"t1": [0.80], "t3": [0.70]}})
    ab = {"Only gain": ({"terms": "gain"}, [0.70], [0.60]), "Only MHA": ({"modules": "mha"}, [0.78], [0.71]),
          "Bottom half": ({"layers": "bottom-half"}, [0.75], [0.65])}
    recs += [record(task=t, row=row, method="ln", group="ablation", options=opts, score=s[0], val=s[0])
             for row, (opts, s1, s3) in ab.items() for t, s in (("t1", s1), ("t3", s3))]
    table = build.ablation_table(aggregate(recs))
    assert [r.label for r in table.rows] == ["LN", "Only gain", "Only MHA", "Bottom half"]
    assert table.rows[0].italic
    assert [table.cell(r, "Type").text for r in ab] == ["Term", "Module", "Layer"]
    for row, (_, s1, s3) in ab.items():
        assert table.cell(row, "t1").delta == pytest.approx(100 * (s1[0] - 0.80))
        assert table.cell(row, "Avg.").delta == pytest.approx(100 * (s1[0] + s3[0]) / 2 - 75.0)
    assert table.cell("Only MHA", "Avg.").mark == BEST


def test_ablation_reference_from_its_own_group_without_a_main_ln():
    recs = [record(row="LN full", group="ablation", options={"terms": "both"}, score=0.8),
            record(row="Only bias", group="ablation", options={"ln": {"terms": "bias"}}, score=0.7)]
    table = build.ablation_table(aggregate(recs))
    assert [r.label for r in table.rows] == ["LN full", "Only bias"]
    assert table.cell("Only bias", "sst2").delta == pytest.approx(-10.0)


def test_fraction_table_and_series():
    recs = [record(group="fraction", row=f"{k}{f}", mask={"kind": k, "fraction": f}, seed=s, score=v, val=v)
            for k in ("global", "individual") for f in (0.5, 0.1) for s, v in enumerate([f, f + 0.1])]
    cells = aggregate(recs)
    table = build.fraction_table(cells)
    assert table.columns == ["0.1", "0.5"]
    assert [r.label for r in table.rows] == ["sst2", "individual", "global"]
    assert table.cell("global", "0.5").value == pytest.approx(100 * statistics.mean([0.5, 0.6]))
    xs, means, stds = build.fraction_series(cells)[("minilm", "sst2")]["lines"]["individual"]
    assert xs == [0.1, 0.5]
    assert means == pytest.approx([15.0, 55.0]) and stds == pytest.approx([100 * statistics.stdev([0.1, 0.2])] * 2)
    assert build.fraction_series(cells)[("minilm", "sst2")]["refs"] == {}


def test_fraction_borrows_main_ln_as_the_fraction_one_reference():
    recs = [record(group="fraction", row=f"cv{f}", mask={"kind": "cv", "fraction": f}, score=f, val=f)
            for f in (0.1, 0.3)]
    recs += [record(row="LN", seed=s, score=v, val=v) for s, v in enumerate([0.7, 0.8])]
    recs += [record(row="Only bias", group="ablation", options={"terms": "bias"}, score=0.1),
             record(row="LN", task="rte", score=0.5)]  # another task: not a reference for sst2
    table = build.fraction_table(aggregate(recs))
    assert table.columns == ["0.1", "0.3", "1"]
    assert [r.label for r in table.rows] == ["sst2", "cv", build.ALL_LN]
    assert table.cell(build.ALL_LN, "1").value == pytest.approx(75.0) and table.cell("cv", "1").value is None
    assert table.cell(build.ALL_LN, "0.1").value is None and table.cell("cv", "0.3").value == pytest.approx(30.0)
    refs = build.fraction_series(aggregate(recs))[("minilm", "sst2")]["refs"]
    assert refs == {build.ALL_LN: (pytest.approx(75.0), pytest.approx(100 * statistics.stdev([0.7, 0.8])))}


def test_efficiency_relative_to_full_ft_and_absolute_without_it():
    recs = [efficiency("full", "FT", 0.8, 0.2, 2000), efficiency("ln", "LN", 0.4, 0.15, 1000),
            efficiency("ln", "LN", 0.2, 0.25, 1400, task="rte")]  # FT has no rte: LN is compared on sst2
    table = efficiency_table(recs)
    assert table.cell("LN", "Train (FT = 100)").value == pytest.approx(100 * 0.4 / 0.8)
    assert table.cell("LN", "Inference (FT = 100)").value == pytest.approx(100 * 0.15 / 0.2)
    assert table.cell("LN", "Train step (s)").value == pytest.approx(0.3)  # mean over both tasks
    assert table.cell("FT", "Memory (FT = 100)").value == pytest.approx(100)
    alone = efficiency_table(recs[1:])
    assert "Train (FT = 100)" not in alone.columns
    assert any("No full fine-tuning" in n for n in alone.notes)


def test_seed_notes_list_cells_with_fewer_seeds():
    recs = main_records(scores={"A": {"t1": [0.8, 0.8, 0.8]}, "B": {"t1": [0.7, 0.7]}})
    notes = build.seed_notes(aggregate(recs))
    assert len(notes) == 1 and "B on t1" in notes[0] and "2 seed(s)" in notes[0] and "others 3" in notes[0]


@pytest.mark.parametrize("pct,text", [(100.0, "100%"), (0.33, "0.33%"), (0.0006, "0.0006%"),
                                      (0.04412, "0.044%"), (None, "-")])
def test_para_format(pct, text):
    assert fmt_pct(pct) == text


def test_main_group_splits_nlu_and_nlg_and_other_groups_get_a_table():
    recs = [record(row="LN", score=.8), record(row="FT", method="full", score=.9),
            record(task="e2e", task_kind="nlg", metric="bleu", row="LN", score=60.0, test={"bleu": 60.0}),
            record(row="X", method="lora", group="extra", score=.7)]
    cells = aggregate(recs)
    nlu, nlg = build.main_tables(cells)
    assert (nlu.name, nlg.name) == ("main", "main_nlg")
    assert [r.label for r in nlu.rows] == ["FT", "LN"] and [r.label for r in nlg.rows] == ["LN"]
    assert "Avg." not in nlu.columns  # one task: nothing to average
    [extra] = build.other_tables(cells)
    assert extra.name == "group_extra" and extra.cell("X", "sst2").value == pytest.approx(70.0)


def test_efficiency_repeats_give_mean_and_std_on_the_ft_scale():
    ft, ln = [0.8, 1.0, 0.9], [0.40, 0.50, 0.45]
    recs = [efficiency("full", "FT", t, 0.2) for t in ft] + [efficiency("ln", "LN", t, 0.2) for t in ln]
    table = efficiency_table(recs)
    cell = table.cell("LN", "Train (FT = 100)")
    assert cell.value == pytest.approx(100 * statistics.fmean(ln) / statistics.fmean(ft))
    assert cell.std == pytest.approx(100 * statistics.stdev(ln) / statistics.fmean(ft))
    assert cell.text == f"{cell.value:.1f} ± {cell.std:.1f}"
    assert any("timed 3 times" in n for n in table.notes)
    single = efficiency_table([efficiency("full", "FT", 0.8, 0.2), efficiency("ln", "LN", 0.4, 0.2)])
    assert single.cell("LN", "Train (FT = 100)").std is None and "±" not in single.cell("LN", "Train (FT = 100)").text


def test_efficiency_spread_is_within_tasks_not_across_them():
    recs = [efficiency("full", "FT", 1.0, 0.2, task=t) for t in ("sst2", "rte")]
    recs += [efficiency("ln", "LN", t, 0.2) for t in (0.4, 0.5)]  # short sentences
    recs += [efficiency("ln", "LN", t, 0.2, task="rte") for t in (0.8, 1.0)]  # long pairs: slower, not noisier
    cell = efficiency_table(recs).cell("LN", "Train (FT = 100)")
    want = statistics.fmean([statistics.stdev([0.4, 0.5]), statistics.stdev([0.8, 1.0])])
    assert cell.std == pytest.approx(100 * want / 1.0)
