import json
import shutil

import pytest

from typer.testing import CliRunner

from lntune.cli import app
from lntune.sweep.config import load_config
from lntune.sweep.driver import run_sweep
from lntune.sweep.grid import expand, spec_key
from lntune.sweep.store import read_failures, read_records

from .conftest import comparable, tiny_sweep, write_yaml


def test_tiny_sweep_writes_one_record_per_run(reference):
    path, results, records = reference
    assert not (results / "design.json").exists()  # no analysis: section, nothing registered: no claims to decide
    runs = {r.key: r for r in expand(load_config(path))}
    assert sorted(r.key for r in records) == sorted(runs)  # one record per run
    for rec in records:
        run = runs[rec.key]
        assert rec.key == spec_key(rec.spec) and rec.spec == run.spec
        assert (rec.row, rec.group, rec.lr, rec.lr_rank, rec.seed) == \
            (run.row, run.group, run.lr, run.lr_rank, run.seed)
        assert rec.sweep == "tiny" and rec.task_kind == "nlu" and rec.finished_at.endswith("Z")
    train = [r for r in records if r.spec.kind == "train"]
    for r in train:
        assert r.metric == "accuracy" and r.score == r.test["accuracy"]
        assert r.val_score == r.val["accuracy"] and r.val_metric == "accuracy"
        assert r.sizes.model_dump() == {"train": 32, "val": 16, "test": 32} and r.steps == 2 and r.efficiency is None
    ln = [r.counts.tuned for r in train if r.method == "ln" and not r.spec.mask]
    masked = [r for r in train if r.spec.mask]
    # records are in finishing order, which two workers do not fix
    assert sorted(r.row for r in masked) == ["cv f=0.5", "individual f=0.5", "random f=0.5"]
    assert all(r.counts.tuned == round(0.5 * ln[0]) for r in masked)
    timing = [r for r in records if r.spec.kind == "efficiency"]
    assert len(timing) == 1 and timing[0].group == "efficiency" and timing[0].score is None
    e = timing[0].efficiency
    assert e.train_step_seconds > 0 and e.infer_batch_seconds > 0 and e.peak_memory_mb > 0
    assert (e.batch_size, e.seq_len, e.device) == (4, 16, "cpu")
    # timings are read against how many runs shared the machine: one for timing runs, up to `workers` else
    assert timing[0].in_flight == 1 and max(r.in_flight for r in train) == 2
    assert all(r.load is not None and r.load >= 0 for r in records)  # the machine's load while each ran
    assert len(list((results / "fisher").glob("fisher-*.safetensors"))) == 2  # sst2 and rte, for the cv mask
    assert json.loads((results / "status.json").read_text())["running"] == []


def test_a_record_equals_a_plain_training_run(reference, data_dir):
    """The worker's numbers are lntune.api.train_task's, for the same settings."""
    from lntune.api import train_task
    from lntune.train.seed import seed_everything
    from lntune.train import TrainConfig

    rec = next(r for r in reference[2] if r.method == "bitfit" and r.task == "rte" and r.seed == 2)
    s = rec.spec
    seed_everything(2)
    got = train_task(s.task, s.model, "bitfit", s.options, TrainConfig(**s.train, progress=False), None,
                     data_dir, s.train_limit, s.eval_limit, val_limit=s.val_limit, test_split="dev")
    assert got.metrics == rec.val and got.test == rec.test and got.counts == rec.counts


def test_a_torn_last_line_is_repaired_and_its_run_redone(reference, tmp_path):
    path, results, records = reference
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    lines = (copy / "records.jsonl").read_bytes().splitlines(keepends=True)
    (copy / "records.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    report = run_sweep(load_config(path), copy, progress=False)
    assert (report.skipped, report.done, report.failed) == (len(records) - 1, 1, [])
    assert comparable(read_records(copy)) == comparable(records)
    assert (copy / "records.jsonl").read_bytes().count(b"\n") == len(records)


def test_failed_runs_are_logged_and_retried(tiny_model, data_dir, tmp_path):
    cfg = tiny_sweep(tiny_model, data_dir, seeds=[1], tasks=["sst2"], efficiency=None, runs=[
        {"method": "bitfit"},
        {"method": "ln", "options": {"layers": "0-9"}, "row": "too deep"},  # the tiny model has 4 layers
    ])
    path = write_yaml(tmp_path / "s.yaml", cfg)
    args = ["sweep", str(path), "--results", str(tmp_path / "r"), "--no-progress"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 1, out.output
    assert "1 finished now, 1 failed" in out.output and "failed: sst2 ln" in out.output and "0-9" in out.output
    assert [r.method for r in read_records(tmp_path / "r")] == ["bitfit"]
    failures = read_failures(tmp_path / "r")
    assert len(failures) == 1 and "MethodError" in failures[0]["error"] and failures[0]["row"] == "too deep"
    out = CliRunner().invoke(app, args)  # the same command retries the failure only
    assert out.exit_code == 1 and "1 were already in" in out.output and "0 finished now, 1 failed" in out.output
    assert len(read_failures(tmp_path / "r")) == 2 and len(read_records(tmp_path / "r")) == 1


def test_redo_timing_measures_again_and_keeps_the_old_records(reference, tmp_path):
    path, results, records = reference
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    old = [r for r in records if r.spec.kind == "efficiency"]
    # a timing record of an earlier `efficiency:` setting (another key) must go too: the report averages them all
    spec = old[0].spec.as_json()
    stale = {**old[0].model_dump(mode="json"), "key": "0" * 64,
             "spec": {**spec, "efficiency": {**spec["efficiency"], "steps": 99}}}
    with open(copy / "records.jsonl", "a") as f:
        f.write(json.dumps(stale) + "\n")
    out = CliRunner().invoke(app, ["sweep", str(path), "--results", str(copy), "--no-progress", "--redo-timing"])
    assert out.exit_code == 0, out.output
    assert f"{len(records) - len(old)} were already in" in out.output and "1 finished now, 0 failed" in out.output
    now = read_records(copy)
    assert sorted(r.key for r in now) == sorted(r.key for r in records)  # same runs, none twice
    assert comparable(now) == comparable(records)
    new = next(r for r in now if r.spec.kind == "efficiency")
    assert new.finished_at >= old[0].finished_at and new.efficiency.train_step_seconds > 0
    retired = [json.loads(line) for line in (copy / "retired.jsonl").read_text().splitlines()]
    assert [r["key"] for r in retired] == [old[0].key, stale["key"]]
    assert retired[0]["efficiency"] == old[0].efficiency.model_dump()
    assert retired[0]["retired_at"].endswith("Z")


def test_lr_seed_sweep_runs_in_rounds_and_writes_its_design(tiny_model, data_dir, tmp_path):
    cfg = tiny_sweep(tiny_model, data_dir, seeds=[0, 1], lr_seed=0, tasks=["sst2"], efficiency=None,
                     analysis={"margin": 1.0}, runs=[{"method": "ln", "lrs": [1e-2, 1e-4], "lr_budget": 2}, {"method": "full"}])
    path = write_yaml(tmp_path / "s.yaml", cfg)
    report = run_sweep(load_config(path), tmp_path / "r", progress=False)
    recs = read_records(tmp_path / "r")
    assert report.ok and report.total == len(recs) == 2 + 1 + 1 + 1  # ln: 2 picks + 1, full: 1 pick (lr_budget) + 1
    picks = [r for r in recs if r.picks_lr]
    ln_later = next(r for r in recs if r.method == "ln" and not r.picks_lr)
    best = max((r for r in picks if r.method == "ln"), key=lambda r: (r.val_score, -r.lr_rank))
    assert ln_later.lr == best.lr and ln_later.seed == 1
    design = json.loads((tmp_path / "r" / "design.json").read_text())
    assert design["lr_seed"] == 0 and design["analysis"]["margin"] == 1.0
    full = next(r for r in recs if r.method == "full" and not r.picks_lr)
    assert all(d > 0 for *_, d in full.change.cells)  # full FT moves every component
    moved = {c for c, _, d in ln_later.change.cells if d > 0}
    assert moved and all("LayerNorm" in c for c in moved) and ln_later.change.ln  # LN moves the norms only
    assert full.majority["test"] > 0.4 and 0 < full.best_seconds <= full.train_seconds


def test_a_converged_sweep_grows_stops_on_the_score_and_records_a_curve(tiny_model, data_dir, tmp_path):
    """The issue-23 profile in miniature: select on the score, a grid that may grow, a budget-curve run."""
    cfg = tiny_sweep(tiny_model, data_dir, seeds=[0, 1], lr_seed=0, tasks=["sst2"], efficiency=None,
                     lr_budget=None, lr_growth={"steps": 1},
                     train={"epochs": 2, "batch_size": 16, "eval_batch_size": 32, "max_length": 32, "patience": 2,
                            "select": "score", "min_delta": 0.001},
                     runs=[{"method": "ln", "row": "LN", "lrs": [1e-2, 3e-3]},
                           {"method": "ln", "row": "LN (budget)", "group": "curve", "lr_from": "LN", "seeds": [1],
                            "epochs": 2, "patience": None, "curve": [1, 2]}])
    path = write_yaml(tmp_path / "s.yaml", cfg)
    report = run_sweep(load_config(path), tmp_path / "r", progress=False)
    recs = read_records(tmp_path / "r")
    picks = sorted((r for r in recs if r.picks_lr), key=lambda r: r.lr_rank)
    # two lrs: the winner always sits at an end, so the grid grows once that way (steps: 1), then stops
    first = max(picks[:2], key=lambda r: (r.val_score, -r.lr_rank))
    assert report.ok and len(picks) == 3
    assert picks[2].lr == pytest.approx(3e-2 if first.lr == 1e-2 else 1e-3)
    best = max(picks, key=lambda r: (r.val_score, -r.lr_rank))
    ln = next(r for r in recs if r.row == "LN" and not r.picks_lr)
    curve = next(r for r in recs if r.row == "LN (budget)")
    assert ln.lr == best.lr == curve.lr and ln.spec.train["select"] == "score"
    assert [c["epoch"] for c in curve.curve] == [1, 2] and all("accuracy" in c for c in curve.curve)
    kept = curve.curve[curve.val["epoch"] - 1]  # the kept state was scored on the same split
    assert kept["accuracy"] == pytest.approx(curve.test["accuracy"])
