"""A write the file system refuses (ENOSPC, a read-only or special file system) is one line saying what was saved,
what was not, and how to go on; never a traceback (issue 24 #7)."""
import builtins
import errno
from pathlib import Path

from typer.testing import CliRunner

from lntune import durable
from lntune.cli import app
from lntune.skin import load_skin


def _full_for(monkeypatch, name: str) -> None:
    """The disk is full for files called `name` (their temp file, as write_atomic writes it)."""
    def opener(path, *args, **kwargs):
        if Path(path).name.startswith(f".{name}.tmp-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(durable, "open", opener, raising=False)


def _train(model, data_dir, out, *extra):
    args = ["train", "--model", str(model), "--data-dir", str(data_dir), "--train-limit", "32", "--eval-limit", "16",
            "--epochs", "1", "--batch-size", "8", "--eval-every", "2", "--no-progress", "--out", str(out), *extra]
    return CliRunner().invoke(app, args)


def _one_line(run, *words):
    lines = [line for line in run.output.splitlines() if line.strip()]
    assert run.exit_code == 2 and "Traceback" not in run.output, run.output
    assert len(lines) == 1 and all(w in lines[0] for w in words), run.output


def test_metrics_json_refused_after_the_skin_is_saved(tiny_dir, data_dir, tmp_path, monkeypatch):
    model, out = tiny_dir("bert"), tmp_path / "skin"
    _full_for(monkeypatch, "metrics.json")
    _one_line(_train(model, data_dir, out), f"the skin at {out} is saved and whole", "No space left on device",
              "metrics.json (the evaluation history")
    load_skin(out, str(model))  # the skin is whole
    assert not list(out.glob(".*.tmp-*"))


def test_a_checkpoint_refused_stops_with_the_way_to_resume(tiny_dir, data_dir, tmp_path, monkeypatch):
    model, out = tiny_dir("bert"), tmp_path / "skin"
    _full_for(monkeypatch, "state.pt")
    _one_line(_train(model, data_dir, out), "No space left on device", "no checkpoint was kept",
              f"lntune train --resume {out} continues")


def test_the_tensors_refused_say_the_checkpoint_stands(tiny_dir, data_dir, tmp_path, monkeypatch):
    model, out = tiny_dir("bert"), tmp_path / "skin"
    _full_for(monkeypatch, "tuned.safetensors")
    _one_line(_train(model, data_dir, out), "the skin was not saved", "its last checkpoint stands",
              f"lntune train --resume {out} continues")
    monkeypatch.undo()
    done = CliRunner().invoke(app, ["train", "--resume", str(out), "--no-progress"])
    assert done.exit_code == 0 and (out / "skin.json").is_file(), done.output


def test_an_out_folder_no_folder_can_be_made_in_is_refused_before_training(tmp_path):
    run = CliRunner().invoke(app, ["train", "--out", "/proc/lntune-x", "--epochs", "0", "--no-progress"])
    _one_line(run, "--out /proc/lntune-x: cannot make a folder in /proc", "choose another --out")
