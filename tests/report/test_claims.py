"""The registered contrasts on synthetic paired records: pairing, the failed-run rule, Holm, verdicts, files."""
import csv
import itertools
import json

import numpy as np
import pytest

from lntune.report import claims as C
from lntune.report.aggregate import aggregate
from lntune.report.paired import holm
from lntune.report.report import write_report

from .records import edit, efficiency, record, write_store

TASKS = (("sst2", "accuracy", 0.5), ("sick", "accuracy", 0.57), ("stsb", "pearson", None))
SEEDS = (1, 2, 3, 4, 5)
DESIGN = C.Design()


def runs(row, method, shift, noise=0.0, seed0=0, group="main", lr=1e-2, **kw):
    """One record per (task, seed) scoring base + shift (+ seeded noise), all at one lr, plus an lr_seed run."""
    rng = np.random.default_rng(seed0)
    out = []
    for (task, metric, majority), seed in itertools.product(TASKS, SEEDS):
        base = 0.75 + 0.01 * seed  # the seed moves every method alike: what pairing removes
        score = base + shift / 100 + noise / 100 * rng.standard_normal()
        extra = {"majority": {"dev": majority, "test": majority}} if majority else {}
        out.append(record(row=row, method=method, task=task, metric=metric, seed=seed, score=score, val=score,
                          lr=lr, group=group, **extra, **kw))
    out.append(record(row=row, method=method, task="sst2", seed=0, lr=lr, score=0.1, val=0.9, picks_lr=True))
    return out


def by_name(outs):
    return {o.contrast.name: o for o in outs}


def decided(records):
    return by_name(C.outcomes(aggregate(records), records, DESIGN))


def test_differences_pair_task_and_seed_and_ignore_lr_seed_runs():
    recs = runs("LN", "ln", 2.0) + runs("BitFit", "bitfit", 0.0)
    recs.append(record(row="BitFit", method="bitfit", task="sst2", seed=9, score=0.1, val=0.1))  # LN lacks seed 9
    cells = aggregate(recs)
    a, b = (C.side(r, cells, recs, DESIGN) for r in ("LN", "BitFit"))
    diffs = C.differences(a, b)
    assert set(diffs) == {"sst2", "sick", "stsb"} and all(len(v) == 5 for v in diffs.values())
    assert all(d == pytest.approx(2.0) for v in diffs.values() for d in v)  # the seed effect cancels exactly


def test_a_consistent_advantage_holds_and_holm_uses_every_contrast():
    recs = (runs("LN", "ln", 2.0, noise=0.5, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=0.5, seed0=2)
            + runs("FT", "full", 3.0, noise=0.5, seed0=3, lr=1e-4))
    outs = C.outcomes(aggregate(recs), recs, DESIGN)
    got = by_name(outs)
    assert got["LN - BitFit"].verdict == C.HOLDS and got["LN - BitFit"].result.pairs == 15
    assert got["LN - FT"].verdict == C.HOLDS  # 000 claims LN below FT: the claimed direction
    assert [o.p_holm for o in outs] == holm([o.result.p if o.result else None for o in outs])
    assert got["LN - FT, time per training step"].verdict == C.NOT_DECIDABLE  # no times recorded here
    # 15 pairs all one sign: the exact two-sided p is 2 / 2**15; Holm multiplies the smallest by the family size
    assert got["LN - BitFit"].result.p == pytest.approx(2 / 2**15)


def test_the_opposite_direction_is_contradicted_and_noise_is_undecided():
    recs = runs("LN", "ln", -2.0, noise=0.3, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=0.3, seed0=2)
    assert decided(recs)["LN - BitFit"].verdict == C.CONTRADICTED
    recs = runs("LN", "ln", 0.5, noise=4.0, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=4.0, seed0=2)
    o = decided(recs)["LN - BitFit"]
    assert o.verdict == C.UNDECIDED and "includes 0" in o.reason


def test_equivalence_claims_need_tost_within_the_margin():
    tight = runs("LN (002 set)", "ln", 0.1, noise=0.2, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=0.2, seed0=2)
    o = decided(tight)["LN (002 set) - BitFit"]
    assert o.verdict == C.EQUIV and o.result.ci_high < DESIGN.margin and o.p_equiv_holm < 0.05
    far = runs("LN (002 set)", "ln", -4.0, noise=0.3, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=0.3, seed0=2)
    assert decided(far)["LN (002 set) - BitFit"].verdict == C.CONTRADICTED


def test_a_side_that_never_left_the_majority_class_makes_the_claim_not_decidable():
    def failing(r):  # validation at the majority rate (+1 point): failed by the rule
        if r.picks_lr:
            return r
        return edit(r, val={"accuracy": r.majority["dev"] + 0.01} if r.metric == "accuracy" else {"pearson": 0.1})

    prefix = [failing(r) for r in runs("Prefix", "prefix", 0.0, group="unified")]
    recs = prefix + runs("Prefix+LN", "prefix+ln", 5.0, group="unified")
    o = decided(recs)["Prefix+LN - Prefix"]
    assert o.verdict == C.NOT_DECIDABLE and o.reason == "Prefix failed in 15 of 15 runs"


def test_the_failed_run_rule():
    rec = record(metric="accuracy", val=0.52, majority={"dev": 0.5})
    assert C.failed_run(rec, DESIGN)  # 2 points above the majority rate
    assert not C.failed_run(edit(rec, val={"accuracy": 0.53}), DESIGN)
    assert C.failed_run(record(metric="pearson", val=0.19), DESIGN)
    assert not C.failed_run(record(metric="pearson", val=0.21), DESIGN)
    assert not C.failed_run(record(metric="accuracy", val=0.5), DESIGN)  # no majority rate recorded: no rule


def test_failed_pairs_are_shown_without_them_and_under_training_is_flagged():
    ln = [edit(r, val={**r.val, "step": 10}) for r in runs("LN", "ln", 2.0, noise=0.5, seed0=1, steps=10)]
    # every run kept its last evaluation; one failed
    ln = [edit(r, val={"accuracy": 0.5, "step": 10}) if (r.task, r.seed) == ("sst2", 1) else r for r in ln]
    o = decided(ln + runs("BitFit", "bitfit", 0.0, noise=0.5, seed0=2))["LN - BitFit"]
    assert o.failed == 1 and o.clean.pairs == 14 and o.result.pairs == 15
    assert any("without them" in f for f in o.flags)
    assert any("LN kept its last epoch in 15 of 15 runs" in f for f in o.flags)


def test_time_to_best_is_a_paired_relative_difference():
    ln = runs("LN", "ln", 0.0, best_seconds=70.0)
    ft = [edit(r, best_seconds=100.0 + i)  # 70 / (100 + i) - 1
          for i, r in enumerate(runs("FT", "full", 0.0, lr=1e-4, best_seconds=100.0))]
    diffs = C.time_to_best(ln + ft)
    sst2 = [r for r in ft if r.task == "sst2" and not r.picks_lr]
    assert diffs["sst2"] == pytest.approx([100 * (70 - r.best_seconds) / r.best_seconds for r in sst2])
    o = decided(ln + ft)["LN - FT, time to the best validation score"]
    assert o.verdict == C.HOLDS and o.result.mean < -25
    # LN: 10 s a step; FT: (100 + i) / 10 s
    stepped = [edit(r, val={**r.val, "step": 7 if r.row == "LN" else 10}) for r in ln + ft]
    per_step = C.step_time(stepped)["sst2"]
    assert per_step == pytest.approx([100 * (10 - r.best_seconds / 10) / (r.best_seconds / 10) for r in sst2])


def test_time_notes_say_how_many_runs_shared_the_machine_as_the_records_say():
    ln = runs("LN", "ln", 0.0, best_seconds=70.0)
    ft = runs("FT", "full", 0.0, lr=1e-4, best_seconds=100.0)
    name = "LN - FT, time to the best validation score"
    assert decided(ln + ft)[name].note.endswith("; how many runs shared the machine on 2 CPUs was not recorded")
    alone = [edit(r, in_flight=1) for r in ln + ft]
    assert decided(alone)[name].note.endswith("; one run at a time on 2 CPUs")
    two = [edit(r, in_flight=2) for r in ln + ft]
    assert decided(two)[name].note.endswith("; 2 runs at a time on 2 CPUs")
    mixed = [edit(r, in_flight=1 + (r.seed % 2)) for r in ln + ft]
    assert decided(mixed)[name].note.endswith("; 1 to 2 runs at a time on 2 CPUs")
    # the score contrasts keep their own note, with no timing words
    assert "run" not in decided(two)["LN - FT"].note
    loaded = [edit(r, in_flight=2, load=1.5 + (r.seed % 2)) for r in ln + ft]  # others' work shows in the load
    mean = np.mean([r.load for r in loaded if r.is_reported])  # the runs the contrast reads
    assert decided(loaded)[name].note.endswith("; 2 runs at a time on 2 CPUs; machine load (1-minute average) "
                                               f"1.5 to 2.5, mean {mean:.1f}")
    assert decided([edit(loaded[0], load=None)] + loaded[1:])[name].note.endswith("2 CPUs")  # some lack it


def test_write_report_with_a_design_writes_claims_and_the_forest_plot(tmp_path):
    recs = (runs("LN", "ln", 2.0, noise=0.5, seed0=1) + runs("BitFit", "bitfit", 0.0, noise=0.5, seed0=2)
            + runs("FT", "full", 3.0, noise=0.5, seed0=3, lr=1e-4) + [efficiency("ln", "LN"), efficiency("full", "FT")])
    change = {"cells": [["attention.self.query", 0, 0.01], ["output.LayerNorm", 0, 0.02]],
              "ln": [["ffn", "weight", 0, 0.02], ["ffn", "bias", 0, 0.01]]}
    recs = [edit(r, change=change) if r.row in ("FT", "LN") and not r.picks_lr and r.group == "main" else r
            for r in recs]
    folder = write_store(tmp_path / "r", recs)
    (folder / "design.json").write_text(json.dumps({"analysis": {"margin": 1.0, "majority_margin": 2.0,
                                                                 "min_r": 0.2, "level": 0.95}}))
    written = write_report(folder, tmp_path / "out")
    rows = list(csv.DictReader(open(written["claims.csv"])))
    assert [r["contrast"] for r in rows][:2] == ["LN - BitFit", "LN - FT"]
    first = rows[0]
    assert first["verdict"] == "holds" and first["pairs"] == "15" and first["margin"] == "1.0"
    assert float(first["ci_low"]) < float(first["mean"]) < float(first["ci_high"])
    for name in ("forest.png", "change/change_heatmap.png", "change/ln_change.png", "lr_choice.csv"):
        assert (tmp_path / "out" / name).is_file(), name
    md = (tmp_path / "out" / "report.md").read_text()
    assert "The papers' claims, decided on paired runs" in md and "The papers' findings, checked" not in md


def test_too_few_pairs_to_reach_p_005_is_not_decidable():
    only_sst2 = [r for r in runs("Only Bias", "ln", 3.0, group="ablation") + runs("Only Gain", "ln", 0.0,
                 group="ablation") if r.task == "sst2"]
    o = decided(only_sst2)["Only Bias - Only Gain"]
    assert o.pairs == 5 and o.verdict == C.NOT_DECIDABLE
    assert o.reason == "5 pairs: an exact sign-flip test cannot go below p = 0.0625"


def test_lr_choices_list_the_tries_and_the_lr_the_reported_seeds_used():
    recs = runs("LN", "ln", 0.0) + [efficiency("ln", "LN")]
    recs.append(record(row="LN", method="ln", task="sick", seed=0, lr=3e-3, lr_rank=1, val=0.95, picks_lr=True))
    got = {(r["row"], r["task"]): r for r in C.lr_choices(recs)}
    assert got[("LN", "sst2")]["chosen"] == "0.01"
    assert got[("LN", "sick")] == {"row": "LN", "task": "sick", "tried": {"0.003": 0.95}, "chosen": "0.01"}
    timing_only = [r for r in recs if r.picks_lr or r.group == "efficiency"]
    assert {r["chosen"] for r in C.lr_choices(timing_only)} == {"(later seeds not run yet)"}


def test_the_lr_table_says_when_a_tie_chose_the_lr():
    from lntune.report.evidence import lr_table

    recs = runs("LN", "ln", 0.0)  # seed 0 tried 1e-2 (val 0.9), the reported seeds used 1e-2
    tied = record(row="LN", method="ln", task="sst2", seed=0, lr=3e-3, lr_rank=1, val=0.9, picks_lr=True)
    below = record(row="LN", method="ln", task="sst2", seed=0, lr=3e-2, lr_rank=2, val=0.8, picks_lr=True)
    used = lambda extra: {row.values[0].text: row.values[2].text for row in lr_table(recs + extra).rows}  # noqa: E731
    assert used([tied, below])["sst2"] == "0.01 (tied with 0.003: the grid's order chose)"
    assert used([below])["sst2"] == "0.01"  # no other lr scored the same


def test_a_task_only_one_side_ran_is_named_beside_the_verdict():
    ln, ft = runs("LN", "ln", -2.0), runs("FT", "full", 0.0, lr=1e-4)
    partial = [r for r in ft if r.task != "sick"]  # FT's SICK seeds have not run yet
    o = decided(ln + partial)["LN - FT"]
    assert o.tasks == ("sst2", "stsb")
    assert "sick: only LN has runs there so far, so the contrast leaves sick out" in o.flags
    assert not any("only" in f for f in decided(ln + ft)["LN - FT"].flags)  # both ran every task: no flag
