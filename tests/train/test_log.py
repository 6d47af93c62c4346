"""The run's log (issue 16): OUT/metrics.jsonl holds every step's loss and lr and every evaluation; --report-to
tensorboard writes events that TensorBoard reads back (offline); a resumed run's file has each step once."""
import json

import pytest
from typer.testing import CliRunner

from lntune.cli import app
from lntune.errors import TrainingError
from lntune.method import build_method, prepare
from lntune.train import train
from lntune.train.checkpoint import Checkpointer, load
from lntune.train.log import METRICS, check_tracker

from .test_loop import config, feats
from .test_resume import DiesAfter, Killed


def _rows(path):
    return [json.loads(line) for line in (path / METRICS).read_text().splitlines()]


def test_metrics_jsonl_has_every_step_and_evaluation(make_lm, tmp_path, one_thread):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    result = train(tuning, feats(lm, 64, 1), feats(lm, 16, 2), config(epochs=2, eval_every=3), log_dir=tmp_path)
    rows = _rows(tmp_path)
    steps = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval" in r]
    assert [r["step"] for r in steps] == list(range(1, result.steps + 1))
    assert [r["loss"] for r in steps] == pytest.approx(result.losses)
    lrs = [r["lr"] for r in steps]
    assert lrs[-1] == 0.0 and max(lrs) <= 3e-2  # the linear schedule decays to 0 from the peak lr
    assert [e["step"] for e in evals] == [h["step"] for h in result.history]
    assert evals[0]["eval"]["loss"] == pytest.approx(result.history[0]["loss"])


def test_resumed_run_logs_each_step_once(make_lm, tmp_path, one_thread):
    def run(saver):
        lm = make_lm("bert")
        tuning = prepare(lm, build_method("ln"))
        return train(tuning, feats(lm, 64, 1), feats(lm, 16, 2), config(epochs=2, eval_every=3), checkpoint=saver,
                     log_dir=tmp_path)

    with pytest.raises(Killed):
        run(DiesAfter(tmp_path, 1))
    with (tmp_path / METRICS).open("a") as f:  # a step logged after the checkpoint, then a line cut by the kill
        f.write(json.dumps({"step": 4, "epoch": 1, "loss": 9.0, "lr": 0.1}) + '\n{"step": 5, "ep')
    result = run(Checkpointer(tmp_path, {}, load(tmp_path)))
    steps = [r["step"] for r in _rows(tmp_path) if "loss" in r]
    assert steps == list(range(1, result.steps + 1))
    assert 9.0 not in [r["loss"] for r in _rows(tmp_path) if "loss" in r]


def test_tensorboard_events_read_back(make_lm, tmp_path, one_thread):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    result = train(tuning, feats(lm, 32, 1), feats(lm, 16, 2), config(epochs=2, report_to="tensorboard"),
                   log_dir=tmp_path)
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events, sorted(p.name for p in tmp_path.rglob("*"))
    ea = EventAccumulator(str(events[0].parent))
    ea.Reload()
    loss = [e.value for e in ea.Scalars("train/loss")]
    assert [e.step for e in ea.Scalars("train/loss")] == list(range(1, result.steps + 1))
    assert loss == pytest.approx(result.losses, rel=1e-6)
    assert [e.value for e in ea.Scalars("eval/loss")] == pytest.approx([h["loss"] for h in result.history], rel=1e-6)


def test_missing_tracker_package_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(TrainingError, match="--report-to wandb needs the wandb package: pip install wandb"):
        check_tracker("wandb")
    check_tracker("none")
    with pytest.raises(TrainingError, match="--report-to"):
        config(report_to="comet")


def test_several_trackers_at_once(monkeypatch):
    """As transformers' report_to: a list (here joined by commas); each tracker's package is checked up front."""
    import importlib.util

    assert config(report_to="tensorboard,wandb").report_to == "tensorboard,wandb"
    for bad in ("tensorboard,tensorboard", "none,wandb", "tensorboard,comet", "tensorboard,"):
        with pytest.raises(TrainingError, match=r"--report-to .*: choose none, or one or more of tensorboard, wandb, "
                                                r"mlflow joined by commas"):
            config(report_to=bad)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(TrainingError, match="--report-to tensorboard,wandb: wandb needs the wandb package"):
        check_tracker("tensorboard,wandb")


def test_cli_writes_metrics_jsonl_beside_the_skin(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "s"
    r = CliRunner().invoke(app, ["train", "--model", str(tiny_dir("bert")), "--train-limit", "32", "--eval-limit",
                                 "16", "--epochs", "1", "--batch-size", "16", "--no-progress", "--data-dir",
                                 str(data_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2] and sum("eval" in r for r in rows) == 1
    assert (out / "skin.json").exists()


def test_cli_grad_accum_and_report_to(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "s"
    r = CliRunner().invoke(app, ["train", "--model", str(tiny_dir("bert")), "--train-limit", "32", "--eval-limit",
                                 "16", "--epochs", "1", "--batch-size", "4", "--grad-accum", "4", "--report-to",
                                 "tensorboard", "--no-progress", "--data-dir", str(data_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "skin.json").read_text())
    assert meta["train"]["grad_accum"] == 4 and meta["train"]["report_to"] == "tensorboard"
    assert meta["steps"] == 2  # 32 examples, optimizer batches of 4 x 4
    assert list(out.rglob("events.out.tfevents.*"))
    r = CliRunner().invoke(app, ["train", "--grad-accum", "0"])
    assert r.exit_code == 2 and "--grad-accum 0: must be an integer >= 1" in r.output


def test_a_missing_tracker_is_refused_before_the_model_loads(monkeypatch, tmp_path):
    import importlib.util

    from lntune import api

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    monkeypatch.setattr(api, "load_model", lambda *a, **k: pytest.fail("the model was loaded first"))
    with pytest.raises(TrainingError, match="--report-to wandb needs the wandb package"):
        api.train_task("sst2", "minilm", "ln", config=config(report_to="wandb"), out=tmp_path / "s")
