"""A method is one class with its traits and one registration: a toy method registered in a test reaches the
CLI, a sweep YAML and grid, the report's groupings, merge and the Python API, with nothing else edited."""
import copy
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from lntune.cli import app
from lntune.method import METHODS, Method, Tuned, build_method, order, parts, prepare


@dataclass
class ToyConfig:
    layers: int = 1  # how many blocks' FFN norms train


class Toy(Method):
    name = "toy"
    Config = ToyConfig
    lr_family = "ln"
    adds_modules = True
    block = "ffn"
    merge = "copy"
    heads = ("classification",)

    def apply(self, lm) -> list[Tuned]:
        params = dict(lm.model.named_parameters())
        keep = [n for n in params if n.endswith("output.LayerNorm.weight") and ".attention." not in n]
        return [Tuned(n, params[n]) for n in keep[: self.config.layers]]


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(METHODS, "toy", Toy)
    return Toy


def test_the_registry_builds_it_and_the_report_orders_it(toy):
    assert build_method("toy", layers=2).options() == {"layers": 2}
    assert [m.name for m in parts("toy+ln")] == ["toy", "ln"] and order("toy") == list(METHODS).index("toy")
    from lntune.report.findings import having

    assert "toy" in having("block", "ffn") and "toy" in having("adds_modules")


def test_the_cli_lists_it_and_trains_it(toy, tiny_dir, data_dir, tmp_path):
    out = CliRunner().invoke(app, ["methods"]).output
    assert "toy\tlayers=1" in out
    run = CliRunner().invoke(app, ["train", "--model", str(tiny_dir("bert")), "--method", "toy", "-o", "layers=2",
                                   "--train-limit", "16", "--eval-limit", "16", "--epochs", "1", "--no-progress",
                                   "--data-dir", str(data_dir), "--out", str(tmp_path / "skin")])
    assert run.exit_code == 0, run.output
    assert "toy on" in run.output and (tmp_path / "skin" / "skin.json").is_file()


def test_a_sweep_takes_its_lr_family_and_refuses_heads_it_lacks(toy, data_dir):
    from lntune.sweep.config import ConfigError, parse_config
    from lntune.sweep.grid import expand, lr_list
    from tests.sweep.conftest import tiny_sweep

    cfg = parse_config(copy.deepcopy(tiny_sweep("minilm", data_dir, efficiency=None, lr_budget=None,
                                                runs=[{"method": "toy", "tasks": ["sst2"]}])), "s.yaml")
    assert lr_list(cfg, "toy") == cfg.lrs["ln"]
    runs = expand(cfg, str(data_dir))
    assert {r.lr for r in runs} == set(cfg.lrs["ln"]) and all(r.spec.method == "toy" for r in runs)
    with pytest.raises(ConfigError, match="toy cannot run on stsb"):
        parse_config(copy.deepcopy(tiny_sweep("minilm", data_dir, tasks=["sst2", "stsb"],
                                              runs=[{"method": "toy"}])), "s.yaml")


def test_the_api_tunes_only_its_tensors(toy, make_lm):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("toy"))
    assert [t.name for t in tuning.tuned] == ["bert.encoder.layer.0.output.LayerNorm.weight"]
