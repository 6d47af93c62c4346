"""Resume an interrupted run (issue 15): the checkpoint written at each evaluation holds everything the rest of
the run depends on, so a run killed anywhere and resumed writes the skin an uninterrupted run writes, bit for bit.

In-process tests stop a run by raising right after its k-th checkpoint (at an epoch's end, mid-epoch, after an
epoch's last batch, with the frozen-bottom cache, with the per-tensor optimizer, twice in a row); the CLI test
SIGKILLs `lntune train` mid-epoch and resumes it with `lntune train --resume RUN_DIR`."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lntune.cli import app
from lntune.method import build_method, prepare
from lntune.train import train
from lntune.train.checkpoint import Checkpointer, load, state_path

from .test_loop import config, feats


class Killed(Exception):
    pass


class DiesAfter(Checkpointer):
    """Checkpoints like a run's, and 'dies' right after writing the `limit`-th one."""

    def __init__(self, run_dir, limit: int, resumed: dict | None = None) -> None:
        super().__init__(run_dir, {}, resumed)
        self.limit = limit

    def save(self, acc, payload) -> None:
        super().save(acc, payload)
        if self.saves == self.limit:
            raise Killed


def _masks(lm) -> dict:
    g = torch.Generator().manual_seed(0)
    return {f"{s.name}.{a}": torch.rand(getattr(s.module, a).shape, generator=g) < 0.3 for s in lm.norms
            for a in ("weight", "bias")}


def _run(make_lm, cfg, checkpoint=None, masked=False, **method):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln", **method), masks=_masks(lm) if masked else None)
    result = train(tuning, feats(lm, 64, 1), feats(lm, 24, 2), cfg, checkpoint=checkpoint)
    return result, tuning.state()


CASES = {  # training settings, the checkpoint after which the run dies, the LN method's options
    "epoch end": (dict(epochs=3), 1, {}),
    "mid-epoch": (dict(epochs=2, eval_every=3), 1, {}),
    "second epoch": (dict(epochs=2, eval_every=3), 2, {}),
    "after an epoch's last batch": (dict(epochs=2, eval_every=4), 1, {}),
    # the cache's rows are refilled from the same batches: served rows stay bit-identical
    "frozen-bottom cache": (dict(epochs=3, eval_every=3, frozen_bottom="eval", cache_bottom="on"), 2,
                            {"layers": "top-half"}),
    "per-tensor AdamW": (dict(epochs=2, eval_every=3, packed=False), 2, {}),
    "element masks": (dict(epochs=2, eval_every=3), 2, {"masked": True}),  # flat buffers hold masked-in elements
    "max steps": (dict(max_steps=7, eval_every=3), 2, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resumed_run_equals_uninterrupted_run(make_lm, tmp_path, one_thread, case):
    kw, limit, method = CASES[case]
    cfg = config(batch_size=16, **kw)  # 64 examples: 4 steps per epoch
    ref, ref_state = _run(make_lm, cfg, **method)
    with pytest.raises(Killed):
        _run(make_lm, cfg, DiesAfter(tmp_path, limit), **method)
    saved = load(tmp_path)
    assert saved["position"]["done"] is False
    got, got_state = _run(make_lm, cfg, Checkpointer(tmp_path, {}, saved), **method)
    assert got.losses == ref.losses and got.steps == ref.steps
    assert got.history == ref.history and got.best == ref.best
    assert got.cache.get("served") == ref.cache.get("served")
    assert ref_state.keys() == got_state.keys()
    for k in ref_state:
        assert torch.equal(got_state[k], ref_state[k]), k


def test_a_resumed_run_killed_again_resumes_too(make_lm, tmp_path, one_thread):
    cfg = config(batch_size=16, epochs=3, eval_every=3)
    ref, ref_state = _run(make_lm, cfg)
    with pytest.raises(Killed):
        _run(make_lm, cfg, DiesAfter(tmp_path, 1))  # step 3, epoch 1
    with pytest.raises(Killed):
        _run(make_lm, cfg, DiesAfter(tmp_path, 2, load(tmp_path)))  # steps 6 and 9: epoch 3
    assert load(tmp_path)["position"]["epoch"] == 3
    got, got_state = _run(make_lm, cfg, Checkpointer(tmp_path, {}, load(tmp_path)))
    assert got.losses == ref.losses and got.history == ref.history
    assert all(torch.equal(got_state[k], ref_state[k]) for k in ref_state)


def test_a_finished_checkpoint_resumes_to_the_end(make_lm, tmp_path, one_thread):
    cfg = config(batch_size=16, epochs=2)
    ref, ref_state = _run(make_lm, cfg)
    with pytest.raises(Killed):
        _run(make_lm, cfg, DiesAfter(tmp_path, 2))  # the last evaluation: killed before the skin was saved
    saved = load(tmp_path)
    assert saved["position"]["done"] is True
    got, got_state = _run(make_lm, cfg, Checkpointer(tmp_path, {}, saved))
    assert got.history == ref.history and got.steps == ref.steps
    assert all(torch.equal(got_state[k], ref_state[k]) for k in ref_state)


# -- the command line ---------------------------------------------------------------------------------------------


def _cli(model, data_dir, out, *extra):
    return [sys.executable, "-m", "lntune.cli", "train", "--model", str(model), "--data-dir", str(data_dir),
            "--train-limit", "480", "--eval-limit", "32", "--epochs", "2", "--batch-size", "8",
            "--eval-every", "7", "--no-progress", "--out", str(out), *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _kill_after(cmd, run_dir, ready, timeout: float = 240) -> None:
    """Start `cmd`, SIGKILL it as soon as its checkpoint satisfies `ready(payload)`, before it finishes."""
    path = state_path(run_dir)
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, seen = time.monotonic() + timeout, None
    try:
        while True:
            assert proc.poll() is None, f"the run ended before the kill point: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "the kill point never came"
            stamp = path.stat().st_mtime_ns if path.exists() else None
            if stamp is not None and stamp != seen:
                seen = stamp
                try:
                    if ready(torch.load(path, weights_only=True)):
                        break
                except (OSError, RuntimeError, EOFError):  # replaced while read: look again
                    seen = None
            time.sleep(0.002)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert not (run_dir / "skin.json").exists(), "the run finished before it was killed"


def test_sigkilled_cli_run_resumes_to_the_same_skin(tiny_dir, data_dir, tmp_path, one_thread):
    model = tiny_dir("bert")
    ref = tmp_path / "ref"  # the uninterrupted run, in this process (one thread, like the subprocesses)
    res = CliRunner().invoke(app, _cli(model, data_dir, ref)[3:])
    assert res.exit_code == 0, res.output
    assert not (ref / "checkpoint").exists()  # a finished run is its skin: the checkpoint is removed

    run = tmp_path / "run"
    _kill_after(_cli(model, data_dir, run), run, lambda p: True)  # the first checkpoint: step 7, mid-epoch
    first = load(run)
    assert first["position"]["epoch"] == 1 and first["position"]["skip"] == 7 and not first["position"]["done"]
    resume = [sys.executable, "-m", "lntune.cli", "train", "--resume", str(run), "--no-progress"]
    done = subprocess.run(resume, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dev (best by loss" in done.stdout and f"skin: {run}" in done.stdout
    assert not (run / "checkpoint").exists()

    want, got = load_file(ref / "tuned.safetensors"), load_file(run / "tuned.safetensors")
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_resume_errors_are_one_line(tmp_path, tiny_dir, data_dir, monkeypatch):
    runner = CliRunner()

    def run(*args):
        res = runner.invoke(app, ["train", *map(str, args)])
        return res.exit_code, res.output.strip()

    (tmp_path / "empty").mkdir()
    code, out = run("--resume", tmp_path / "empty")
    assert code == 2 and len(out.splitlines()) == 1 and "no checkpoint" in out, out
    code, out = run("--resume", tmp_path / "missing")
    assert code == 2 and out == f"error: --resume {tmp_path / 'missing'}: no such folder", out
    code, out = run("--resume", tmp_path / "empty", "--lr", "0.1")
    assert code == 2 and "drop --lr" in out and len(out.splitlines()) == 1, out

    # a finished run: its checkpoint is gone, and --resume says there is nothing to do
    fast = ["--model", tiny_dir("bert"), "--data-dir", data_dir, "--train-limit", 32, "--eval-limit", 16,
            "--epochs", 1, "--batch-size", 16, "--no-progress"]
    code, out = run(*fast, "--out", tmp_path / "done")
    assert code == 0, out
    assert not (tmp_path / "done" / "checkpoint").exists()
    code, out = run("--resume", tmp_path / "done")
    assert code == 2 and "that run finished" in out and len(out.splitlines()) == 1, out

    # an interrupted run's folder is not started over by mistake, and --resume finishes it
    from lntune.api import train_task
    from lntune.train import TrainConfig

    def dies(self, acc, payload):
        real(self, acc, payload)
        raise Killed

    real = Checkpointer.save
    monkeypatch.setattr(Checkpointer, "save", dies)
    with pytest.raises(Killed):
        train_task("sst2", str(tiny_dir("bert")), "ln", {}, TrainConfig(epochs=1, batch_size=16, progress=False),
                   out=tmp_path / "cut", data_dir=data_dir, train_limit=32, eval_limit=16, checkpoint=True)
    monkeypatch.undo()
    code, out = run(*fast, "--out", tmp_path / "cut")
    assert code == 2 and "--resume" in out and "--overwrite" in out and len(out.splitlines()) == 1, out
    code, out = run("--resume", tmp_path / "cut")
    assert code == 0 and "dev (best by loss" in out, out
    assert (tmp_path / "cut" / "skin.json").exists() and not (tmp_path / "cut" / "checkpoint").exists()


# --- an interrupted --overwrite (issue 24 #6): the old skin stays whole until the new one replaces it -------------

def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _overwrite_args(model, data_dir, out, seed):
    return ["train", "--model", str(model), "--data-dir", str(data_dir), "--train-limit", "64", "--eval-limit", "16",
            "--epochs", "1", "--batch-size", "8", "--eval-every", "2", "--no-progress", "--out", str(out),
            "--seed", str(seed), "--overwrite"]


@pytest.fixture
def old_skin(tiny_dir, data_dir, tmp_path, one_thread):
    model, out = tiny_dir("bert"), tmp_path / "skin"
    res = CliRunner().invoke(app, _overwrite_args(model, data_dir, out, 1)[:-1])
    assert res.exit_code == 0, res.output
    return model, out, _files(out)


def test_an_overwrite_killed_mid_training_leaves_the_old_skin_and_resumes(old_skin, data_dir, monkeypatch):
    from lntune.durable import next_dir
    from lntune.skin import load_skin

    model, out, before = old_skin
    real = Checkpointer.save

    def dies(self, acc, payload):
        real(self, acc, payload)
        raise Killed

    monkeypatch.setattr(Checkpointer, "save", dies)
    with pytest.raises(Killed):
        CliRunner().invoke(app, _overwrite_args(model, data_dir, out, 2), catch_exceptions=False)
    monkeypatch.setattr(Checkpointer, "save", real)
    assert _files(out) == before  # every byte of the old skin, metrics.jsonl included
    load_skin(out, str(model))
    assert state_path(next_dir(out)).is_file()
    res = CliRunner().invoke(app, ["train", "--resume", str(out), "--no-progress"])
    assert res.exit_code == 0 and f"skin: {out}" in res.output, res.output
    assert json.loads((out / "skin.json").read_text())["train"]["seed"] == 2 and not next_dir(out).exists()
    load_skin(out, str(model))


def test_an_overwrite_killed_before_the_swap_finishes_on_resume(old_skin, data_dir, monkeypatch):
    from lntune import api
    from lntune.durable import next_dir

    model, out, before = old_skin

    def killed(new, old):
        raise Killed

    monkeypatch.setattr(api, "replace_folder", killed)
    with pytest.raises(Killed):
        CliRunner().invoke(app, _overwrite_args(model, data_dir, out, 2), catch_exceptions=False)
    assert _files(out) == before and (next_dir(out) / "skin.json").is_file()
    monkeypatch.undo()
    res = CliRunner().invoke(app, ["train", "--resume", str(out), "--no-progress"])
    assert res.exit_code == 2 and "its new skin was waiting beside it and is now in place" in res.output, res.output
    assert json.loads((out / "skin.json").read_text())["train"]["seed"] == 2 and not next_dir(out).exists()


def test_the_swap_leaves_one_whole_skin_at_every_point(tmp_path):
    """durable.exchange swaps two folders in one step; a crash after it leaves the old skin beside, which the
    next replacing run removes."""
    from lntune.durable import exchange, next_dir

    out, new = tmp_path / "skin", next_dir(tmp_path / "skin")
    out.mkdir()
    new.mkdir()
    (out / "skin.json").write_text("old")
    (new / "skin.json").write_text("new")
    exchange(new, out)
    assert (out / "skin.json").read_text() == "new" and (new / "skin.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".skin.next", "skin"]


def test_a_sigkilled_overwrite_through_the_cli_keeps_the_old_skin_and_resumes(old_skin, data_dir):
    from lntune.durable import next_dir

    model, out, before = old_skin
    cmd = [sys.executable, "-m", "lntune.cli", *_overwrite_args(model, data_dir, out, 2)]
    _kill_after(cmd, next_dir(out), lambda p: True)
    assert _files(out) == before
    done = subprocess.run([sys.executable, "-m", "lntune.cli", "train", "--resume", str(out), "--no-progress"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "skin.json").read_text())["train"]["seed"] == 2 and not next_dir(out).exists()
