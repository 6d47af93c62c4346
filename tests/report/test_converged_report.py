"""The converged profile's report (issue 23): families, the sequential rule's stop, the convergence gate, the lr
grid's edges, the budget curve and the comparison with a baseline, on synthetic paired records."""
import csv
import json

import numpy as np
import pytest

from lntune.errors import LntuneError
from lntune.report import claims as C
from lntune.report.aggregate import aggregate
from lntune.report.paired import holm, stratified_t
from lntune.report.report import write_report
from lntune.report.sequential import Sequential

from .records import edit, record, write_store
from .test_claims import SEEDS, runs

FAMILIES = (("primary", ("LN - BitFit", "LN - FT")), ("secondary", ("LN - Random (blocks)",)),
            ("descriptive", ("LN - FT, time per training step",)))


def design(**kw):
    return C.Design(families=FAMILIES, **kw)


def test_holm_runs_within_each_family_and_the_descriptive_family_has_no_verdict():
    recs = (runs("LN", "ln", 2.0, noise=0.5, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=0.5, seed0=2)
            + runs("FT", "full", 3.0, noise=0.5, seed0=3, lr=1e-4) + runs("Random (blocks)", "random", 1.0, 3.0, 4))
    recs = [edit(r, best_seconds=10.0 if r.row == "LN" else 20.0, val={**r.val, "step": 5}) for r in recs]
    outs = C.outcomes(aggregate(recs), recs, design())
    got = {o.contrast.name: o for o in outs}
    primary = [got["LN - BitFit"], got["LN - FT"]]
    assert [o.p_holm for o in primary] == holm([o.result.p for o in primary])  # a family of two, not of all
    assert got["LN - Random (blocks)"].p_holm == got["LN - Random (blocks)"].result.p  # alone in its family
    step = got["LN - FT, time per training step"]
    assert step.verdict == C.DESCRIPTIVE and step.p_holm is None and step.reason.startswith("-50.0")
    lone = {o.contrast.name: o for o in C.outcomes(aggregate(recs), recs, C.Design())}
    assert lone["LN - BitFit"].p_holm > got["LN - BitFit"].p_holm  # Holm over everything asks for more


def test_the_t_half_width_is_the_stratified_t_interval():
    recs = runs("LN", "ln", 2.0, noise=1.0, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=1.0, seed0=2)
    o = {x.contrast.name: x for x in C.outcomes(aggregate(recs), recs, design())}["LN - BitFit"]
    diffs = C.differences(*o.sides)
    assert o.t_half == pytest.approx(stratified_t(diffs)[1])


def test_each_contrast_is_analysed_on_the_seeds_where_its_rule_stopped():
    # LN - BitFit is tight at 3 seeds; LN - FT is wide, so LN and FT ran 5: LN - BitFit must still use 3
    recs = (runs("LN", "ln", 2.0, noise=0.1, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=0.1, seed0=2)
            + runs("FT", "full", 3.0, noise=8.0, seed0=3, lr=1e-4))
    rule = Sequential([("LN", "BitFit"), ("LN", "FT")], start=3, block=2, max=5, half_width=1.5)
    outs = {o.contrast.name: o for o in C.outcomes(aggregate(recs), recs, design(sequential=rule))}
    assert outs["LN - BitFit"].stop.seeds == 3 and outs["LN - BitFit"].pairs == 3 * 3
    assert outs["LN - FT"].stop.seeds == 5 and outs["LN - FT"].stop.stopped and outs["LN - FT"].pairs == 3 * 5
    unruled = {o.contrast.name: o for o in C.outcomes(aggregate(recs), recs, design())}
    assert unruled["LN - BitFit"].pairs == 3 * len(SEEDS)


def test_a_row_that_keeps_its_last_evaluation_too_often_withholds_its_verdicts(tmp_path):
    recs = runs("LN", "ln", 2.0, noise=0.5, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=0.5, seed0=2)
    # every run stopped early (kept step 4 of 10) but BitFit's on SICK, 2 of 5 at the cap
    recs = [edit(r, val={**r.val, "step": 10 if (r.row, r.task) == ("BitFit", "sick") and r.seed <= 2 else 4})
            for r in recs]
    gated = design(gate=0.2, gate_rows=("LN", "BitFit"))
    o = {x.contrast.name: x for x in C.outcomes(aggregate(recs), recs, gated)}["LN - BitFit"]
    assert o.verdict == C.WITHHELD and "BitFit on sick: 2 of 5" in o.reason
    assert {x.contrast.name: x for x in C.outcomes(aggregate(recs), recs, design(gate=0.5))}["LN - BitFit"].verdict \
        == C.HOLDS  # 40% is within a 50% gate
    folder = write_store(tmp_path / "r", recs)
    (folder / "design.json").write_text(json.dumps({"analysis": {"gate": 0.2, "gate_rows": ["LN", "BitFit"],
                                                                 "families": dict(FAMILIES)}, "lr_growth": {}}))
    write_report(folder, tmp_path / "out")
    health = {(r["Row"], r["Task"]): r for r in csv.DictReader(open(tmp_path / "out" / "health.csv"))}
    assert health[("BitFit", "sick")]["Gate"] == "broken" and health[("LN", "sick")]["Gate"] == "passes"
    claims = list(csv.DictReader(open(tmp_path / "out" / "claims.csv")))
    assert claims[0]["family"] == "primary" and claims[0]["verdict"] == "withheld"
    lrs = list(csv.DictReader(open(tmp_path / "out" / "lr_choice.csv")))
    assert lrs and all(r["Inside the grid"].startswith("no") for r in lrs)  # one lr tried: not bracketed
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Holm within each family. TOST" in text and "Holm over all the contrasts" not in text


def test_descriptive_contrasts_show_a_mean_and_ci_and_no_p(tmp_path):
    recs = runs("LN", "ln", 2.0, noise=0.5, seed0=1) + runs("FT", "full", 3.0, noise=0.5, seed0=3, lr=1e-4)
    recs = [edit(r, best_seconds=10.0 if r.row == "LN" else 20.0, val={**r.val, "step": 5}) for r in recs]
    folder = write_store(tmp_path / "r", recs)
    (folder / "design.json").write_text(json.dumps({"analysis": {"families": dict(FAMILIES)}}))
    write_report(folder, tmp_path / "out")
    claims = {r["contrast"]: r for r in csv.DictReader(open(tmp_path / "out" / "claims.csv"))}
    step = claims["LN - FT, time per training step"]
    assert step["family"] == "descriptive" and step["verdict"] == "descriptive"
    assert step["p"] == step["p_holm"] == step["p_equiv"] == "" and step["mean"] != ""
    table = {r["Contrast A - B"]: r for r in csv.DictReader(open(tmp_path / "out" / "claims_table.csv"))}
    assert table["LN - FT, time per training step"]["p (Holm)"] == "- (-)"
    assert table["LN - FT"]["p (Holm)"] != "- (-)"


def test_a_design_file_naming_an_unregistered_contrast_is_refused(tmp_path):
    folder = write_store(tmp_path / "r", runs("LN", "ln", 2.0, noise=0.5, seed0=1))
    (folder / "design.json").write_text(json.dumps(
        {"analysis": {"families": {"descriptive": ["LN - FT", "time per training step"]}}}))
    with pytest.raises(LntuneError, match=r"design.json: .*'time per training step'.*quote"):
        write_report(folder, tmp_path / "out")
    assert not (tmp_path / "out" / "report.md").exists()


def test_the_budget_curve_lines_up_epochs_and_compares_with_early_stopping(tmp_path):
    recs = runs("LN", "ln", 2.0, noise=0.5, seed0=1)
    for seed in (1, 2, 3):
        curve = [{"epoch": e, "accuracy": 0.6 + 0.02 * e + 0.001 * seed, "loss": 1.0} for e in (1, 2, 4, 8, 16)]
        recs.append(record(row="LN (budget)", method="ln", group="curve", seed=seed, score=curve[-1]["accuracy"],
                           val=0.8, curve=curve))
    folder = write_store(tmp_path / "r", recs)
    (folder / "design.json").write_text(json.dumps({"analysis": {}}))
    write_report(folder, tmp_path / "out")
    assert (tmp_path / "out" / "budget_curve.png").is_file()
    row = next(csv.DictReader(open(tmp_path / "out" / "budget_curve.csv")))
    assert row["Seeds"] == "1, 2, 3" and row["Score by epoch"].startswith("1: 62.2; 2: 64.2")
    early = np.mean([r.score for r in recs if r.row == "LN" and r.task == "sst2" and r.seed <= 3
                     and not r.picks_lr]) * 100
    assert float(row["Last - early-stopped"]) == pytest.approx(92.2 - early, abs=0.01)
    sd = np.std([0.921 + 0.001 * s for s in (1, 2, 3)], ddof=1) * 100  # the last scores' seed SD
    gained = 92.2 - early > sd
    assert row["Cross-check"] == (f"fails: training on gains {92.2 - early:+.2f} > SD {sd:.2f}" if gained
                                  else "passes")
    assert gained  # this curve climbs to 92.2, well above the early-stopped runs: the check must fail here
    flat = [edit(r, curve=[{**p, "accuracy": p["accuracy"] - 0.3} for p in r.curve]) if r.curve else r for r in recs]
    flat_folder = write_store(tmp_path / "flat", flat)
    (flat_folder / "design.json").write_text(json.dumps({"analysis": {}}))
    write_report(flat_folder, tmp_path / "out2")
    assert next(csv.DictReader(open(tmp_path / "out2" / "budget_curve.csv")))["Cross-check"] == "passes"


def test_the_baseline_table_tells_families_from_runs(tmp_path):
    old = runs("LN", "ln", 2.0, noise=2.0, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=2.0, seed0=2)
    old += runs("FT", "full", 3.0, noise=0.5, seed0=3, lr=1e-4)
    base = write_store(tmp_path / "v1", old)
    (base / "design.json").write_text(json.dumps({"analysis": {}}))
    new = runs("LN", "ln", 2.0, noise=0.2, seed0=5) + runs("BitFit", "bitfit", 0.0, noise=0.2, seed0=6)
    folder = write_store(tmp_path / "v2", new)
    (folder / "design.json").write_text(json.dumps({"analysis": {"families": dict(FAMILIES)}}))
    write_report(folder, tmp_path / "out", baseline=base)
    rows = {r["Contrast A - B"]: r for r in csv.DictReader(open(tmp_path / "out" / "baseline.csv"))}
    assert rows["LN - BitFit"]["Family"] == "primary" and rows["LN - BitFit"]["Here"].endswith("holds")
    assert rows["LN - FT"]["Here"] == "not run" and rows["LN - FT"]["What changed"].startswith("not run here")
    assert "Holm p" in rows["LN - BitFit"]["v1"] and "v1, this design's families" in rows["LN - BitFit"]


def test_the_seed_rules_simulated_coverage_is_shown_when_results_hold_it(tmp_path):
    recs = runs("LN", "ln", 2.0, noise=0.5, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=0.5, seed0=2)
    folder = write_store(tmp_path / "r", recs)
    (folder / "design.json").write_text(json.dumps({"analysis": {"families": dict(FAMILIES)}}))
    write_report(folder, tmp_path / "without")
    assert not (tmp_path / "without" / "rule_coverage.csv").exists()
    rule = {"start": 9, "block": 3, "max": 16, "half_width": 1.5, "level": 0.95}
    row = {"contrast": "LN - BitFit", "draw": "normal", "coverage_t": 0.9385,
           "coverage_t_fixed": {"9": 0.948, "16": 0.9545}, "coverage_bootstrap": 0.8833, "sims": 2000,
           "boot_sims": 300, "stopped_at": {"9": 192, "12": 286, "16": 1522}}
    (folder / "sequential_coverage.json").write_text(json.dumps({"rule": rule, "rows": [row]}))
    write_report(folder, tmp_path / "with")
    got = next(csv.DictReader(open(tmp_path / "with" / "rule_coverage.csv")))
    assert float(got["t-interval, with the rule"]) == 0.9385 and got["t-interval, fixed seeds"] == "9: 0.948, 16: 0.955"
    assert got["Stopped at (seeds: share)"] == "9: 10%, 12: 14%, 16: 76%"
    claims = json.loads((tmp_path / "with" / "claims.json").read_text())
    assert "coverage" not in claims["design"]  # the design as registered, nothing added
    before = (folder / "sequential_coverage.json").read_bytes()
    write_report(folder, folder)  # into the results folder itself, as the committed reports are written
    assert (folder / "sequential_coverage.json").read_bytes() == before  # no table file overwrites the input
