"""The converged profile's sweep rules (issue 23): lr grids that grow until their winner is inside, runs that
take another row's chosen lr (budget curves), and the sequential seed rule."""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from lntune.report.paired import stratified_t
from lntune.report.sequential import Sequential
from lntune.sweep.config import ConfigError, load_config, parse_config
from lntune.sweep.grid import ladder, plan
from lntune.report.sequential import contrast_stop

from tests.report.records import record

from .conftest import finished, tiny_sweep

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize("lr, up, expected", [
    (1e-2, True, 3e-2), (3e-2, True, 1e-1), (1e-2, False, 3e-3), (3e-3, False, 1e-3), (1e-4, False, 3e-5),
    (3e-5, True, 1e-4), (2e-4, True, 6e-4), (2e-4, False, 2e-4 / 3),
])
def test_ladder_steps_by_3_and_10_over_3(lr, up, expected):
    assert ladder(lr, up) == pytest.approx(expected, rel=1e-6)
    assert ladder(ladder(lr, up), not up) == pytest.approx(lr, rel=1e-5)


def _cfg(data_dir, **changes):
    base = dict(seeds=[0, 1, 2], lr_seed=0, efficiency=None, lr_growth={"steps": 2}, lr_budget=None,
                runs=[{"method": "ln", "row": "LN", "lrs": [1e-2, 3e-3, 3e-2], "tasks": ["sst2"]}])
    return parse_config(copy.deepcopy(tiny_sweep("minilm", data_dir, **{**base, **changes})), "s.yaml")


def _done(runs, scores: dict[float, float], extra: dict | None = None) -> dict:
    out = dict(extra or {})
    out.update({r.key: finished(r, scores[r.lr]) for r in runs if r.picks_lr and r.lr in scores})
    return out


def test_a_grid_grows_until_its_winner_is_inside(data_dir):
    cfg = _cfg(data_dir)
    first = plan(cfg, str(data_dir))
    assert [r.lr for r in first.runs] == [1e-2, 3e-3, 3e-2] and first.waiting == 2
    # the top lr wins: one step up is tried before any later seed is named
    p = plan(cfg, str(data_dir), _done(first.runs, {1e-2: 0.7, 3e-3: 0.6, 3e-2: 0.8}))
    assert sorted(r.lr for r in p.runs) == sorted([1e-2, 3e-3, 3e-2, 1e-1]) and p.waiting == 2
    grown = next(r for r in p.runs if r.lr == 1e-1)
    assert grown.picks_lr and grown.lr_rank == 3 and grown.spec.train["lr"] == 1e-1
    # 1e-1 is worse: 3e-2 is inside, and seeds 1 and 2 run at it
    p = plan(cfg, str(data_dir), _done(p.runs, {1e-2: 0.7, 3e-3: 0.6, 3e-2: 0.8, 1e-1: 0.5}))
    assert [(r.seed, r.lr) for r in p.runs if not r.picks_lr] == [(1, 3e-2), (2, 3e-2)] and p.waiting == 0


def test_a_grid_grows_downwards_and_at_most_steps_times(data_dir):
    cfg = _cfg(data_dir)
    scores = {1e-2: 0.5, 3e-3: 0.6, 3e-2: 0.4, 1e-3: 0.7, 3e-4: 0.8}
    p = plan(cfg, str(data_dir))
    for _ in range(4):
        p = plan(cfg, str(data_dir), _done(p.runs, scores))
    tried = sorted(r.lr for r in p.runs if r.picks_lr)
    assert tried == pytest.approx(sorted([1e-2, 3e-3, 3e-2, 1e-3, 3e-4]))  # two growths, then the cap
    assert {r.lr for r in p.runs if not r.picks_lr} == {3e-4}  # still at the edge: the report says so


def test_a_winner_inside_the_grid_names_the_seeds_at_once(data_dir):
    cfg = _cfg(data_dir)
    first = plan(cfg, str(data_dir))
    p = plan(cfg, str(data_dir), _done(first.runs, {1e-2: 0.8, 3e-3: 0.7, 3e-2: 0.6}))
    assert len(p.runs) == 5 and {r.lr for r in p.runs if not r.picks_lr} == {1e-2}


def test_lr_from_runs_at_the_rows_chosen_lr_with_a_curve(data_dir):
    runs = [{"method": "ln", "row": "LN", "lrs": [1e-2, 3e-3], "tasks": ["sst2"]},
            {"method": "ln", "row": "LN (budget)", "group": "curve", "lr_from": "LN", "tasks": ["sst2"],
             "seeds": [1, 2], "epochs": 3, "patience": None, "curve": [1, 3]}]
    cfg = _cfg(data_dir, runs=runs, lr_growth=None)
    first = plan(cfg, str(data_dir))
    assert first.waiting == 2 + 2 and all(r.row == "LN" for r in first.runs)
    p = plan(cfg, str(data_dir), _done(first.runs, {1e-2: 0.6, 3e-3: 0.7}))
    curve = [r for r in p.runs if r.row == "LN (budget)"]
    assert [(r.seed, r.lr) for r in curve] == [(1, 3e-3), (2, 3e-3)]
    for r in curve:
        assert r.spec.curve == [1, 3] and r.spec.train["epochs"] == 3 and r.spec.train["patience"] is None
    plain = [r for r in p.runs if r.row == "LN"]
    assert all("curve" not in r.spec.as_json() for r in plain)  # keys of runs without a curve stay as before
    assert {r.key for r in curve}.isdisjoint({r.key for r in plain})


def test_the_sequential_rule_stops_a_contrast_at_its_half_width():
    rule = Sequential([("A", "B")], start=3, block=2, max=7, half_width=1.5)
    rng = np.random.default_rng(0)
    seeds = list(range(1, 11))

    def runs(n, sd):
        out = {}
        for t in ("t1", "t2"):
            for s in seeds[:n]:
                d = 0.02 + rng.normal(0, sd / 100)
                out[("A", t, s)] = record(score=0.8 + d, metric="accuracy")
                out[("B", t, s)] = record(score=0.8, metric="accuracy")
        return out

    assert contrast_stop(rule, "A", "B", ["t1", "t2"], seeds, {}) .seeds == 3  # nothing recorded: the start
    tight = contrast_stop(rule, "A", "B", ["t1", "t2"], seeds, runs(3, 0.1))
    assert tight.stopped and tight.seeds == 3 and tight.half_width < 1.5
    wide = runs(7, 6.0)
    partial = {k: v for k, v in wide.items() if k[2] <= 3}
    grow = contrast_stop(rule, "A", "B", ["t1", "t2"], seeds, partial)
    assert grow.seeds == 5 and not grow.stopped  # too wide at 3: 2 more seeds asked for
    cap = contrast_stop(rule, "A", "B", ["t1", "t2"], seeds, wide)
    assert cap.stopped and cap.seeds == 7 and cap.half_width > 1.5  # the cap ends it, the width is reported


def test_the_plan_names_later_seeds_only_as_the_rule_asks(data_dir):
    runs = [{"method": "ln", "row": "A", "lrs": [1e-2], "tasks": ["sst2"]},
            {"method": "bitfit", "row": "B", "lrs": [1e-3], "tasks": ["sst2"]},
            {"method": "ln", "row": "C", "options": {"terms": "bias"}, "lrs": [1e-2], "tasks": ["sst2"]}]
    seq = {"contrasts": [["A", "B"]], "start": 2, "block": 1, "max": 4, "half_width": 1.0}
    cfg = _cfg(data_dir, runs=runs, seeds=[0, 1, 2, 3, 4], lr_growth=None, sequential=seq)
    p = plan(cfg, str(data_dir))
    done = {r.key: finished(r) for r in p.runs}
    p = plan(cfg, str(data_dir), done)
    named = {(r.row, r.seed) for r in p.runs if not r.picks_lr}
    assert named == {("A", 1), ("A", 2), ("B", 1), ("B", 2)} | {("C", s) for s in (1, 2, 3, 4)}  # C: no rule
    noisy = {1: 0.9, 2: 0.6}
    for r in p.runs:
        if not r.picks_lr:
            done[r.key] = finished(r, noisy.get(r.seed, 0.7) if r.row == "A" else 0.7)
    p = plan(cfg, str(data_dir), done)
    assert {r.seed for r in p.runs if r.row == "A" and not r.picks_lr} == {1, 2, 3}  # too wide: one more seed


def test_stratified_t_is_the_t_interval_on_one_task_and_welch_on_several():
    x = [1.0, 2.5, -0.5, 3.0, 0.7]
    mean, half, df = stratified_t({"a": x})
    ci = stats.ttest_1samp(x, 0).confidence_interval(0.95)
    assert mean == pytest.approx(np.mean(x)) and half == pytest.approx((ci.high - ci.low) / 2) and df == 4
    y = [0.1, 0.2, 0.15, 0.05]
    mean, half, df = stratified_t({"a": x, "b": y})
    va, vb = np.var(x, ddof=1) / 5, np.var(y, ddof=1) / 4
    welch = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 3)
    assert mean == pytest.approx((np.mean(x) + np.mean(y)) / 2) and df == pytest.approx(welch)
    assert half == pytest.approx(stats.t.ppf(0.975, welch) * math.sqrt(va + vb) / 2)
    with pytest.raises(ValueError, match="2 or more"):
        stratified_t({"a": [1.0]})


def test_the_converged_profile_parses_and_registers_its_design(tmp_path):
    from lntune.sweep.driver import write_design
    from lntune.sweep.store import Store

    cfg = load_config(BENCH / "paper_cpu_converged.yaml")
    assert cfg.val_limit if hasattr(cfg, "val_limit") else all(t.val_limit == 500 for t in cfg.tasks)
    assert cfg.train["select"] == "score" and cfg.train["patience"] >= 2 and cfg.lr_growth.steps >= 1
    assert cfg.sequential.start == 9 and cfg.sequential.max == 16 and len(cfg.sequential.contrasts) == 6
    with Store(tmp_path) as store:
        write_design(store, cfg)
    design = json.loads((tmp_path / "design.json").read_text())
    assert design["analysis"]["gate"] == 0.2 and len(design["analysis"]["families"]["primary"]) == 6
    assert design["sequential"]["half_width"] == 1.5 and design["lr_growth"]["steps"] == 3
    assert "stopping" in design["registered"]
    for e in cfg.runs:  # at least three lrs per primary row and task, a factor of 3 apart
        if e.lr_from:
            continue
        for lrs in (e.lrs.values() if isinstance(e.lrs, dict) else [e.lrs]):
            ordered = sorted(lrs)
            assert len(lrs) >= 3 and all(2.9 < b / a < 3.4 for a, b in zip(ordered, ordered[1:]))


def test_the_converged_design_registers_every_time_contrast_as_descriptive(tmp_path):
    from lntune.report.claims import CONTRASTS, SCORE
    from lntune.sweep.driver import write_design
    from lntune.sweep.store import Store

    cfg = load_config(BENCH / "paper_cpu_converged.yaml")
    times = [c.name for c in CONTRASTS if c.measure != SCORE]
    assert cfg.analysis.families["descriptive"] == times
    with Store(tmp_path) as store:
        write_design(store, cfg)
    committed = BENCH.parent / "docs" / "results" / "paper_cpu_converged" / "design.json"
    assert (tmp_path / "design.json").read_bytes() == committed.read_bytes()


def test_the_v1_design_file_is_written_as_before(tmp_path):
    from lntune.sweep.driver import write_design
    from lntune.sweep.store import Store

    cfg = load_config(BENCH / "paper_cpu.yaml")
    with Store(tmp_path) as store:
        write_design(store, cfg)
    committed = BENCH.parent / "docs" / "results" / "paper_cpu" / "design.json"
    assert (tmp_path / "design.json").read_bytes() == committed.read_bytes()


@pytest.mark.parametrize("change, match", [
    ({"runs": [{"method": "ln", "row": "X", "lr_from": "nope"}]}, "lr_from"),
    ({"runs": [{"method": "ln", "row": "X", "curve": [3, 1]}]}, "curve"),
    ({"sequential": {"contrasts": [["LN", "Nope"]]}}, "sequential.contrasts"),
    ({"lr_seed": None, "lr_growth": {"steps": 1}}, "lr_seed"),
    ({"analysis": {"gate": 1.5}}, "analysis.gate"),
    ({"analysis": {"gate_rows": ["LN", "Bitfit"]}}, "analysis.gate_rows: 'Bitfit' is not a row"),
    # an unquoted [a, b] list splits "LN - FT, time per training step" into two names neither of which is one
    ({"analysis": {"families": {"descriptive": ["LN - FT", "time per training step"]}}},
     "'time per training step' is not a registered contrast.*'LN - FT, time per training step'.*quoted"),
    ({"analysis": {"families": {"primary": ["LN - FT"], "descriptive": ["LN - FT"]}}},
     "already in family 'primary'"),
])
def test_bad_converged_settings_name_the_field(data_dir, change, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(data_dir, **change)
