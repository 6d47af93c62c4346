import statistics

import pytest

from lntune.report.aggregate import aggregate
from lntune.report.findings import Finding, findings_table

from .records import efficiency, record


def seeds(row, method, task, scores, **kw):
    return [record(row=row, method=method, task=task, seed=s, score=v, val=v, **kw) for s, v in enumerate(scores, 1)]


def by_claim(table):
    return {r.label: r.values for r in table.rows if not r.section}


def test_ln_vs_bitfit_uses_the_mean_over_shared_tasks_and_the_parameter_ratio():
    recs = (seeds("LN", "ln", "sst2", [0.80, 0.84], tuned_pct=0.04)
            + seeds("LN", "ln", "rte", [0.60, 0.62], tuned_pct=0.04)
            + seeds("BitFit", "bitfit", "sst2", [0.78, 0.80], tuned_pct=0.1)
            + seeds("BitFit", "bitfit", "rte", [0.65, 0.65], tuned_pct=0.1)
            + seeds("BitFit", "bitfit", "cola", [0.9], tuned_pct=0.1))  # LN has no cola: not compared
    rows = by_claim(findings_table(aggregate(recs), recs))
    source, here, verdict, qualifier = rows["LN-tuning ≥ BitFit, with fewer parameters"]
    ln = round((round(82.0, 1) + round(61.0, 1)) / 2, 1)
    bf = round((79.0 + 65.0) / 2, 1)
    assert here.text == f"LN {ln:.1f} vs BitFit {bf:.1f} (mean over sst2, rte); #Para. 0.04% vs 0.1% (0.40x)"
    spreads = ([.8, .84], [.6, .62], [.78, .8], [.65, .65])
    noise = round(statistics.fmean([100 * statistics.stdev(v) for v in spreads]), 1)
    assert ln - bf < 0 and abs(ln - bf) <= noise  # 71.5 vs 72.0, a spread of ~1.4
    assert verdict.text == "no (within noise)" and verdict.value == 0.0
    assert qualifier.text == "within noise"  # its own column: findings.csv keeps it beside the 0/1
    assert "000 table 1" in source.text


def test_unified_pairs_borrow_x_from_main_and_ffn_claim_runs_the_other_way():
    recs = (seeds("Prefix", "prefix", "sst2", [0.50, 0.52]) + seeds("Adapter", "par_adapter_ffn", "sst2", [0.8, 0.8])
            + seeds("Prefix+LN", "prefix+ln", "sst2", [0.77, 0.79], group="unified")
            + seeds("Adapter+LN", "par_adapter_ffn+ln", "sst2", [0.7, 0.7], group="unified")
            + seeds("SeqMHA", "seq_adapter_mha", "sst2", [0.75, 0.75], group="unified")
            + seeds("SeqMHA+LN", "seq_adapter_mha+ln", "sst2", [0.74, 0.74], group="unified"))
    rows = by_claim(findings_table(aggregate(recs), recs))
    assert rows["Prefix+LN ≥ Prefix"][1].text == "1 of 1: Prefix+LN 78.0 vs Prefix 51.0"
    assert rows["Prefix+LN ≥ Prefix"][2].text == "yes"
    mha = rows["X+LN ≥ X when X tunes attention (prefix, sequential adapter on MHA)"]
    assert mha[1].text.startswith("1 of 2: ") and "SeqMHA+LN 74.0 vs SeqMHA 75.0" in mha[1].text
    assert mha[2].text == "no"  # the closest pair misses by 1.0, more than the mean seed std (0.7)
    ffn = rows["X+LN ≤ X when X tunes the FFN (parallel / sequential adapter on FFN)"]
    assert ffn[1].text == "1 of 1: Adapter 80.0 vs Adapter+LN 70.0" and ffn[2].text == "yes"


def test_ablation_and_mask_claims():
    recs = [record(row="Only Gain", group="ablation", options={"terms": "gain"}, score=0.72),
            record(row="Only Bias", group="ablation", options={"terms": "bias"}, score=0.70),
            record(row="Only FFN", group="ablation", options={"modules": "ffn"}, score=0.75),
            record(row="Only MHA", group="ablation", options={"modules": "mha"}, score=0.75)]
    for f, ind, rnd in ((0.1, 0.60, 0.50), (0.3, 0.70, 0.71)):
        recs += [record(row=f"individual {f}", group="fraction", mask={"kind": "individual", "fraction": f}, score=ind),
                 record(row=f"random {f}", group="fraction", mask={"kind": "random", "fraction": f}, score=rnd)]
    rows = by_claim(findings_table(aggregate(recs), recs))
    assert rows["Only bias ≥ only gain"][1].text == "bias 70.0 vs gain 72.0 (sst2)"
    assert rows["Only bias ≥ only gain"][2].text == "no (one seed)"
    assert rows["LN after MHA only ≥ LN after FFN only"][2].text == "yes (one seed)"  # a tie counts as ≥
    mask = rows["A Fisher-selected LN mask (individual) ≥ a random LN mask of the same size"]
    assert mask[1].text == ("1 of 2: individual 0.1 sst2 60.0 vs random 0.1 sst2 50.0; "
                            "individual 0.3 sst2 70.0 vs random 0.3 sst2 71.0")
    assert mask[2].text == "no (one seed)"
    assert not any("global" in claim for claim in rows)  # no global mask in this sweep: left out
    assert not any("BitFit" in claim for claim in rows)


def test_efficiency_claims_relative_to_full_ft():
    recs = [efficiency("full", "FT", 1.0, 0.30), efficiency("ln", "LN", 0.70, 0.28),
            efficiency("bitfit", "BitFit", 0.75, 0.29), efficiency("prefix", "Prefix", 0.80, 0.36),
            efficiency("mam", "MAM", 0.92, 0.40)]
    rows = by_claim(findings_table([], recs))
    fastest = rows["LN-tuning has the shortest training step of all methods"]
    assert fastest[1].text == "LN 70.0; fastest LN 70.0 (FT = 100)" and fastest[2].text == "yes"
    infer = rows["LN-tuning infers no slower than methods that add modules"]
    ln, prefix = 100 * 0.28 / 0.30, 100 * 0.36 / 0.30
    assert infer[1].text == f"LN {ln:.1f}; fastest adding modules Prefix {prefix:.1f} (FT = 100)"
    assert infer[2].text == "yes"
    assert rows["Every PEFT method trains in under 90% of FT's time (BERT-base)"][2].text == "no"  # MAM at 92
    assert rows["MAM is the slowest PEFT method to train"][2].text == "yes"
    assert not any("prefix-tuning (NLU)" in claim for claim in rows)  # no adapter timed: left out


@pytest.mark.parametrize("adapter_infer, want", [(0.33, "yes"), (0.37, "no")])
def test_adapter_vs_prefix_needs_both_train_and_inference(adapter_infer, want):
    recs = [efficiency("full", "FT", 1.0, 0.30), efficiency("ln", "LN", 0.70, 0.28),
            efficiency("prefix", "Prefix", 0.80, 0.36), efficiency("par_adapter_ffn", "Adapter", 0.65, adapter_infer)]
    row = by_claim(findings_table([], recs))["Adapters train and infer faster than prefix-tuning (NLU)"]
    assert row[1].text == f"train Adapter 65.0 vs Prefix 80.0; infer {100 * adapter_infer / 0.30:.1f} vs 120.0"
    assert row[2].text == want


def test_nothing_to_check_gives_no_table():
    assert findings_table(aggregate([record(row="FT", method="full")]), []) is None


@pytest.mark.parametrize("margin, noise, want", [(2.0, 1.0, "yes"), (0.5, 1.0, "yes (within noise)"),
                                                 (-0.5, None, "no (one seed)"), (None, None, "no")])
def test_verdict_flags(margin, noise, want):
    assert Finding("c", "s", "h", margin is not None and margin >= 0, margin, noise).verdict == want


def test_timing_claims_are_flagged_within_the_spread_of_repeated_timings():
    def timed(method, row, trains, infer=0.3):
        return [efficiency(method, row, t, infer) for t in trains]
    # LN beats BitFit by 2 points on the FT = 100 scale, but each was timed 3 times with a std of 10 points
    recs = timed("full", "FT", [1.0, 1.0, 1.0]) + timed("ln", "LN", [0.6, 0.7, 0.8]) + \
        timed("bitfit", "BitFit", [0.62, 0.72, 0.82])
    row = by_claim(findings_table([], recs))["LN-tuning has the shortest training step of all methods"]
    assert row[2].text == "yes (within noise)"
    # the same gap with a tight spread is a plain yes
    recs = timed("full", "FT", [1.0, 1.0, 1.0]) + timed("ln", "LN", [0.699, 0.7, 0.701]) + \
        timed("bitfit", "BitFit", [0.719, 0.72, 0.721])
    row = by_claim(findings_table([], recs))["LN-tuning has the shortest training step of all methods"]
    assert row[2].text == "yes"
