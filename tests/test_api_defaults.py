"""The command line and the Python API share their defaults for where a run goes and whether it checkpoints."""
import inspect
from pathlib import Path

from lntune import api
from lntune.train import TrainConfig


def test_the_api_and_the_cli_default_to_the_same_out_and_checkpoint():
    from lntune.cli import train_cmd

    cli = {p.name: p.default for p in inspect.signature(train_cmd).parameters.values()}
    params = inspect.signature(api.train_task).parameters
    assert params["checkpoint"].default is cli["checkpoint"].default is True
    assert params["out"].default == api.DEFAULT_OUT and "runs/TASK-METHOD" in cli["out"].help
    assert api.default_out("rte", "bitfit").as_posix() == "runs/rte-bitfit"


def test_a_default_run_goes_to_runs_task_method_and_checkpoints_there(tiny_dir, data_dir, tmp_path, monkeypatch):
    seen = []
    real = api.Checkpointer.start

    def start(run_dir, *args, **kw):
        seen.append(run_dir)
        return real(run_dir, *args, **kw)

    monkeypatch.setattr(api.Checkpointer, "start", start)
    monkeypatch.chdir(tmp_path)
    rec = api.train_task("rte", str(tiny_dir("bert")), "ln", config=TrainConfig(epochs=1, batch_size=16, progress=False),
                         data_dir=data_dir, train_limit=32, eval_limit=16)
    assert rec.out == "runs/rte-ln" and (tmp_path / "runs/rte-ln/skin.json").is_file()
    assert seen == [Path("runs/rte-ln")] and not (tmp_path / "runs/rte-ln/checkpoint").exists()
    seen.clear()
    api.train_task("rte", str(tiny_dir("bert")), "ln", config=TrainConfig(epochs=1, batch_size=16, progress=False),
                   out=None, data_dir=data_dir, train_limit=32, eval_limit=16)
    assert seen == []  # no folder, no checkpoint


def test_each_run_without_out_gets_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert api.default_out("rte", "ln") == Path("runs/rte-ln")
    (tmp_path / "runs/rte-ln").mkdir(parents=True)
    (tmp_path / "runs/rte-ln-2").mkdir()
    assert api.default_out("rte", "ln") == Path("runs/rte-ln-3")
    assert api.default_out("rte", "ln", overwrite=True) == Path("runs/rte-ln")  # --overwrite replaces the base


def test_the_cli_says_where_a_second_default_run_goes(tiny_dir, data_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lntune.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs/rte-ln/checkpoint").mkdir(parents=True)  # an interrupted run holds the base folder
    args = ["train", "--task", "rte", "--model", str(tiny_dir("bert")), "--epochs", "1", "--batch-size", "16",
            "--train-limit", "32", "--eval-limit", "16", "--no-progress", "--data-dir", str(data_dir)]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    assert "skin folder: runs/rte-ln-2 (runs/rte-ln is taken; --out names the folder; runs/rte-ln holds an " \
           "interrupted run: lntune train --resume runs/rte-ln continues it)" in run.output
    assert (tmp_path / "runs/rte-ln-2/skin.json").is_file() and "skin: runs/rte-ln-2" in run.output


def test_a_users_spec_gets_a_flat_folder_name():
    assert api.default_out("local:train=my/x.csv,dev=my/y.csv,text=t,label=l", "ln") == Path("runs/local-my-x-ln")
    assert api.default_out("local:train=x.jsonl,prompt=p,target=t", "ln") == Path("runs/local-x-ln")
    assert api.default_out("conll:data/ner", "bitfit") == Path("runs/conll-data-ner-bitfit")
    assert api.default_out("conll:train=a/b.conll,dev=a/c.conll", "ln") == Path("runs/conll-a-b-ln")
    assert api.default_out("local:train=../up/x y.csv", "ln") == Path("runs/local-up-x-y-ln")
