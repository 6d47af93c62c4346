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
    client = TestClient(started["app"], base_url="http://127.0.0.1:8123")
    health = client.get("/health").json()
    assert health["skins"] == ["a", "b"] and health["model"] == base.name and health["max_tokens"] == 64
    out = client.post("/predict", json={"inputs": [{"task": "b", "text": TEXTS[0]}, {"task": "a", "text": TEXTS[1]}]})
    assert out.status_code == 200 and "value" in out.json()["outputs"][0] and "label" in out.json()["outputs"][1]


def test_serve_generates_from_causal_lm_skins(tiny_dir, tmp_path, started):
    from .conftest import make_skin

    base = tiny_dir("llama", causal=True)
    gen = make_skin(base, tmp_path / "gen", seed=0, labels=(), head="causal-lm")
    cls = make_skin(base, tmp_path / "cls", seed=1)
    r = CliRunner().invoke(app, ["serve", "--skin", f"g={gen}"])
    assert r.exit_code == 0 and "OpenAI base_url http://127.0.0.1:8000/v1" in r.output, r.output
    client = TestClient(started["app"], base_url="http://127.0.0.1:8000")
    out = client.post("/v1/completions", json={"model": "g", "prompt": "the cat", "max_tokens": 3, "temperature": 0})
    assert out.status_code == 200 and out.json()["usage"]["completion_tokens"] <= 3
    r = CliRunner().invoke(app, ["serve", "--skin", f"g={gen}", "--skin", f"c={cls}"])
    assert r.exit_code == 2 and "a classification skin, but this bank serves causal-lm skins" in r.output


@pytest.mark.parametrize("args, message", [
    (["serve"], "give --model, or at least one --skin"),
    (["serve", "--skin", "nameonly"], "write NAME=DIR"),
    (["serve", "--model", "x", "--allow-skin-management"], "--allow-skin-management needs --skin-root DIR"),
    (["serve", "--model", "x", "--api-key", " "], "--api-key / $LNTUNE_API_KEY is empty"),
    (["serve", "--model", "x", "--allowed-hosts", " , "], "--allowed-hosts is empty"),
    (["serve", "--model", "x", "--max-body-bytes", "0"], "--max-body-bytes 0: give a positive number"),
    (["serve", "--model", "x", "--skin-root", "/nonexistent/skins"], "--skin-root /nonexistent/skins: not a folder"),
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


def _serve(args: list[str], env: dict | None = None):
    return CliRunner().invoke(app, ["serve", *args], env=env)


def test_serve_security_options_reach_the_app(module_skins, tmp_path, started):
    base, skins = module_skins
    r = _serve(["--model", str(base), "--skin", f"a={skins['all']}", "--allow-skin-management",
                "--skin-root", str(skins["reg"].parent), "--allowed-hosts", "api.example,10.0.0.5",
                "--max-body-bytes", "500"], env={"LNTUNE_API_KEY": "from-env"})
    assert r.exit_code == 0, r.output
    client = TestClient(started["app"], base_url="http://api.example")
    assert client.get("/health").status_code == 401
    key = {"Authorization": "Bearer from-env"}
    assert client.get("/health", headers=key).status_code == 200
    r = client.post("/skins", json={"name": "r", "path": "reg"}, headers=key)  # relative to --skin-root
    assert r.status_code == 201
    assert TestClient(started["app"], base_url="http://localhost").get("/health", headers=key).status_code == 400
    r = client.post("/predict", json={"inputs": [{"task": "a", "text": "word " * 200}]}, headers=key)
    assert r.status_code == 413 and "at most 500 bytes" in r.json()["detail"]


def test_serve_is_closed_by_default(module_skins, started):
    base, skins = module_skins
    r = _serve(["--model", str(base), "--skin", f"a={skins['all']}"], env={"LNTUNE_API_KEY": None})
    assert r.exit_code == 0 and "warning" not in r.output
    client = TestClient(started["app"], base_url="http://localhost:8000")
    assert client.get("/health").status_code == 200  # no key asked for
    assert client.post("/skins", json={"name": "r", "path": str(skins["reg"])}).status_code == 403
    assert client.delete("/skins/a").status_code == 403
    assert TestClient(started["app"], base_url="http://attacker.example").get("/health").status_code == 400


@pytest.mark.parametrize("host, key, warned", [
    ("0.0.0.0", None, True), ("192.168.1.20", None, True), ("::", None, True),
    ("0.0.0.0", "k", False), ("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False),
])
def test_serve_warns_when_listening_beyond_loopback_without_a_key(module_skins, started, host, key, warned):
    base, skins = module_skins
    r = _serve(["--model", str(base), "--host", host], env={"LNTUNE_API_KEY": key})
    assert r.exit_code == 0, r.output
    assert ("warning: listening on" in r.output and "without an API key" in r.output) == warned
    assert ("note: requests must name this server" in r.output) == (host not in ("127.0.0.1", "localhost", "::1"))
    if host == "192.168.1.20":  # the bind address is an allowed Host besides the loopback names
        assert TestClient(started["app"], base_url=f"http://{host}:8000").get("/health").status_code == 200


@pytest.mark.parametrize("value", ["", "   "])
def test_a_set_but_empty_key_variable_refuses_to_start(value, started):
    """click drops an empty environment variable; the server must not then start open (issue 24, 1)."""
    r = CliRunner().invoke(app, ["serve", "--model", "x"], env={"LNTUNE_API_KEY": value})
    assert r.exit_code == 2 and "--api-key / $LNTUNE_API_KEY is empty" in r.output and "app" not in started


@pytest.mark.parametrize("flag,value,words", [
    ("--batch-size", "0", "greater than or equal to 1"),
    ("--max-inputs", "0", "greater than or equal to 1"),
    ("--port", "70000", "less than or equal to 65535"),
    ("--max-tokens", "0", "greater than or equal to 1"),
    ("--threads", "-2", "greater than or equal to 1"),
])
def test_out_of_range_server_options_are_refused_at_start_up(started, flag, value, words):
    """Before: --batch-size 0 started and then answered 500 to every /predict, --max-inputs 0 made every request a
    413, --port 70000 ended in a traceback."""
    r = CliRunner().invoke(app, ["serve", "--model", "minilm", flag, value], terminal_width=200)
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and f"'{flag}'" in out and words in out and "Traceback" not in out, out
    assert started == {}  # nothing started


def test_the_python_entry_points_refuse_the_same_values(make_lm):
    from lntune.errors import LntuneError
    from lntune.serve.bank import SkinBank
    from lntune.serve.server import create_app

    with pytest.raises(LntuneError, match="batch_size 0: give a whole number >= 1"):
        SkinBank(make_lm("bert"), batch_size=0)
    bank = SkinBank(make_lm("bert"))
    with pytest.raises(LntuneError, match="--max-inputs 0: give a whole number of rows >= 1"):
        create_app(bank, max_inputs=0)
