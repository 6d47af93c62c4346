"""Mask kinds are defined once and every place that names them reads that definition."""
import pytest

from lntune.spec.masks import FISHER_KINDS, MASK_KINDS


def test_mask_kinds_are_shared():
    from lntune.analyse import mask
    from lntune.report import build
    from lntune.sweep import config

    assert mask.KINDS is MASK_KINDS and config.MASK_KINDS is MASK_KINDS and build.MASK_ORDER is MASK_KINDS
    assert set(FISHER_KINDS) == set(MASK_KINDS) - {"random"}


def test_the_sweep_and_the_cli_name_the_same_kinds(data_dir):
    import copy

    from typer.testing import CliRunner

    from lntune.cli import app
    from lntune.sweep.config import ConfigError, parse_config
    from tests.sweep.conftest import tiny_sweep

    cfg = tiny_sweep("minilm", data_dir, runs=[{"method": "ln", "mask": {"kind": "nope", "fraction": 0.5}}])
    with pytest.raises(ConfigError) as e:
        parse_config(copy.deepcopy(cfg), "s.yaml")
    assert ", ".join(MASK_KINDS) in str(e.value)
    assert " | ".join(MASK_KINDS) in CliRunner().invoke(app, ["analyse", "mask", "--help"], env={"COLUMNS": "200"}).output
