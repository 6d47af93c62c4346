"""`lntune serve`: the app it would start answers with the skins named on the command line."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lntune.cli import app

from .conftest import TEXTS


@pytest.fixture
def started(monkeypatch):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: seen.update(app=app, host=host, port=port))
    return seen


def test_serve_builds_the_bank_from_skin_options(skins_for, started):
    base, skins = skins_for("bert", only=("all", "reg"))
    args = ["serve", "--skin", f"a={skins['all']}", "--skin", f"b={skins['reg']}", "--port", "8123",
            "--max-tokens", "64"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert started["port"] == 8123 and started["host"] == "127.0.0.1"
    client = TestClient(started["app"])
    health = client.get("/health").json()
    assert health["skins"] == ["a", "b"] and health["model"] == str(base) and health["max_tokens"] == 64
    out = client.post("/predict", json={"inputs": [{"task": "b", "text": TEXTS[0]}, {"task": "a", "text": TEXTS[1]}]})
    assert out.status_code == 200 and "value" in out.json()["outputs"][0] and "label" in out.json()["outputs"][1]


@pytest.mark.parametrize("args, message", [
    (["serve"], "give --model, or at least one --skin"),
    (["serve", "--skin", "nameonly"], "write NAME=DIR"),
])
def test_serve_explains_bad_options(args, message, started):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and message in r.output and "app" not in started


def test_serve_refuses_a_non_ln_skin_before_listening(tiny_dir, tmp_path, started):
    from .conftest import make_skin

    base = tiny_dir("bert")
    bitfit = make_skin(base, tmp_path / "bitfit", seed=0, method="bitfit")
    r = CliRunner().invoke(app, ["serve", "--model", str(base), "--skin", f"x={bitfit}"])
    assert r.exit_code == 2 and "LN-tuning skins only" in r.output and "app" not in started
