"""`lntune train --config run.yaml` and TrainConfig.from_file (issue 16): the keys of a sweep's train: section
(plus lr, seed, report_to), checked by the sweep's reader and the options' rules; the command line wins."""
import json

import pytest
from typer.testing import CliRunner

from lntune.cli import app
from lntune.errors import LntuneError
from lntune.train import TrainConfig


def _yaml(tmp_path, text, name="run.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_from_file_reads_and_coerces(tmp_path):
    p = _yaml(tmp_path, "lr: 1e-3\nepochs: 3\nbatch_size: 8\ngrad_accum: 2\nhead_lr: 3e-3\npacked: false\n")
    cfg = TrainConfig.from_file(p, seed=7)
    assert (cfg.lr, cfg.epochs, cfg.batch_size, cfg.grad_accum, cfg.head_lr, cfg.packed, cfg.seed) == \
        (1e-3, 3, 8, 2, 3e-3, False, 7)
    assert TrainConfig.from_file(_yaml(tmp_path, "train:\n  epochs: 4\n", "pasted.yaml")).epochs == 4


@pytest.mark.parametrize("text, message", [
    ("lr: -1\n", r"run.yaml: lr: -1.0: must be a finite number > 0"),
    ("epoch: 3\n", r"run.yaml: epoch: unknown key; allowed here: .*epochs"),
    ("batch_size: two\n", r"run.yaml: batch_size"),
    ("- lr: 1\n", r"run.yaml: .*expected a mapping"),
    ("lr: [1\n", r"run.yaml: not valid YAML"),
    ("progress: false\n", r"unknown key"),  # the CLI's --no-progress, not a training option
])
def test_bad_files_name_the_file_and_key(tmp_path, text, message):
    with pytest.raises(LntuneError, match=message):
        TrainConfig.from_file(_yaml(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(LntuneError, match="cannot read it"):
        TrainConfig.from_file(tmp_path / "nope.yaml")


def test_cli_config_with_flags_winning(tiny_dir, data_dir, tmp_path):
    p = _yaml(tmp_path, "lr: 1e-3\nepochs: 1\nbatch_size: 8\ngrad_accum: 2\nseed: 5\nmax_grad_norm: 0.5\n")
    out = tmp_path / "s"
    r = CliRunner().invoke(app, ["train", "--model", str(tiny_dir("bert")), "--config", str(p), "--seed", "9",
                                 "--train-limit", "32", "--eval-limit", "16", "--no-progress", "--data-dir",
                                 str(data_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    t = json.loads((out / "skin.json").read_text())["train"]
    assert (t["lr"], t["epochs"], t["batch_size"], t["grad_accum"], t["max_grad_norm"]) == (1e-3, 1, 8, 2, 0.5)
    assert t["seed"] == 9  # given on the command line


def test_cli_bad_config_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["train", "--config", str(_yaml(tmp_path, "warmup_ratio: 5\n"))])
    assert r.exit_code == 2
    assert "run.yaml: warmup_ratio: 5.0: must be a finite number in [0, 1]" in r.output and "Traceback" not in r.output


def test_sweeps_refuse_report_to(tmp_path):
    from lntune.sweep.config import ConfigError, parse_config

    raw = {"name": "x", "model": "minilm", "tasks": ["sst2"], "runs": [{"method": "ln"}], "train": {"report_to": "wandb"}}
    with pytest.raises(ConfigError, match="train.report_to: unknown key"):
        parse_config(raw, tmp_path / "s.yaml")
