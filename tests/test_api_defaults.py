"""The command line and the Python API share their defaults for where a run goes and whether it checkpoints."""
import inspect

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
    assert rec["out"] == "runs/rte-ln" and (tmp_path / "runs/rte-ln/skin.json").is_file()
    assert seen == [api.default_out("rte", "ln")] and not (tmp_path / "runs/rte-ln/checkpoint").exists()
    seen.clear()
    api.train_task("rte", str(tiny_dir("bert")), "ln", config=TrainConfig(epochs=1, batch_size=16, progress=False),
                   out=None, data_dir=data_dir, train_limit=32, eval_limit=16)
    assert seen == []  # no folder, no checkpoint
