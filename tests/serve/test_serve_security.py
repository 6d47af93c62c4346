"""Who may use the server: the API key, skin management off by default, skin paths confined to the skin root,
no server paths in answers, and the Host-header allow-list against DNS rebinding."""
from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from lntune.errors import LntuneError
from lntune.serve import create_app

KEY = "k3y-for-tests"
ENDPOINTS = [
    ("GET", "/health", None),
    ("GET", "/skins", None),
    ("POST", "/predict", {"inputs": [{"task": "all", "text": "fine ."}]}),
    ("POST", "/skins", {"name": "x", "path": "all"}),
    ("DELETE", "/skins/x", None),
    ("GET", "/openapi.json", None),
    ("GET", "/docs", None),
]


def _client(app, host: str = "localhost") -> TestClient:
    return TestClient(app, base_url=f"http://{host}")


def _ask(client: TestClient, method: str, path: str, body, **headers):
    return client.request(method, path, json=body, headers=headers)


@pytest.fixture
def root(module_skins, tmp_path):
    """A skin root holding a copy of skin `all` as all-copy, and a skin outside it (reg, where module_skins are)."""
    _, skins = module_skins
    root = tmp_path / "root"
    shutil.copytree(skins["all"], root / "all-copy")
    return root


@pytest.mark.parametrize("method, path, body", ENDPOINTS)
def test_with_a_key_every_endpoint_asks_for_it(module_bank, root, method, path, body):
    client = _client(create_app(module_bank, skin_root=root, allow_skin_management=True, api_key=KEY))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
                    {"Authorization": KEY}, {"Authorization": f"Bearer {KEY}x"}):
        r = _ask(client, method, path, body, **headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"] == "Bearer" and "Authorization: Bearer KEY" in r.json()["detail"]
    r = _ask(client, method, path, body, Authorization=f"Bearer {KEY}")
    assert r.status_code not in (401, 403, 500), r.text
    assert _ask(client, "GET", "/health", None, Authorization=f"bearer  {KEY}").status_code == 200


def test_the_key_is_compared_in_constant_time(module_bank, monkeypatch):
    import hmac

    seen = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: seen.append((len(a), len(b))) or real(a, b))
    client = _client(create_app(module_bank, api_key=KEY))
    assert client.get("/health", headers={"Authorization": "Bearer a"}).status_code == 401
    assert client.get("/health", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert seen == [(32, 32), (32, 32)]  # digests: equal lengths, whatever the key given


def test_an_empty_key_is_refused(module_bank):
    with pytest.raises(LntuneError, match="empty"):
        create_app(module_bank, api_key=" ")


def test_skin_management_is_off_unless_enabled(module_bank, root):
    client = _client(create_app(module_bank, skin_root=root))
    r = client.post("/skins", json={"name": "x", "path": "all-copy"})
    assert r.status_code == 403 and "--allow-skin-management" in r.json()["detail"]
    r = client.delete("/skins/all")
    assert r.status_code == 403 and "skin management is off" in r.json()["detail"]
    assert [s["name"] for s in client.get("/skins").json()["skins"]] == ["all", "three", "reg"]
    assert client.post("/predict", json={"inputs": [{"task": "all", "text": "x"}]}).status_code == 200
    with pytest.raises(LntuneError, match="needs --skin-root"):
        create_app(module_bank, allow_skin_management=True)


def test_skin_paths_are_confined_to_the_root_symlinks_included(module_bank, module_skins, root):
    _, skins = module_skins
    client = _client(create_app(module_bank, skin_root=root, allow_skin_management=True))
    outside = skins["reg"]
    (root / "link-out").symlink_to(outside, target_is_directory=True)  # a folder inside that leads outside
    (root / "json-out").mkdir()  # a folder inside whose skin.json leads outside
    (root / "json-out" / "skin.json").symlink_to(outside / "skin.json")
    shutil.copy(outside / "tuned.safetensors", root / "json-out")
    refused = [str(outside), f"../{outside.parent.name}/{outside.name}", "link-out", "json-out",
               str(root / "link-out"), "all-copy/../../" + root.name + "/../" + outside.parent.name]
    for path in refused:
        r = client.post("/skins", json={"name": "x", "path": path})
        assert r.status_code == 403 and "loads skins from under its --skin-root only" in r.json()["detail"], path
    r = client.post("/skins", json={"name": "x", "path": "a\x00b"})
    assert r.status_code == 422 and "not a usable path" in r.json()["detail"]
    r = client.post("/skins", content=json.dumps({"name": "x", "path": "\ud800"}),  # JSON's escape, as sent
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "unicode" in r.json()["detail"]  # FastAPI's JSON parser refuses it already
    assert "x" not in module_bank
    r = client.post("/skins", json={"name": "x", "path": "all-copy"})  # relative to the root
    assert r.status_code == 201 and r.json()["name"] == "x"
    assert client.delete("/skins/x").status_code == 200
    r = client.post("/skins", json={"name": "y", "path": str(root / "all-copy")})  # absolute, inside
    assert r.status_code == 201
    assert client.delete("/skins/y").status_code == 200


def test_answers_show_no_server_paths(module_bank, module_skins, root):
    base, _ = module_skins
    meta = json.loads((root / "all-copy" / "skin.json").read_text())
    meta["task"]["name"] = f"local:train={root}/secret/train.csv,text=sentence,label=label"
    (root / "all-copy" / "skin.json").write_text(json.dumps(meta))
    client = _client(create_app(module_bank, skin_root=root, allow_skin_management=True))
    r = client.post("/skins", json={"name": "local", "path": "all-copy"})
    try:
        assert r.status_code == 201 and "path" not in r.json() and r.json()["task"] == "local"
        listing = client.get("/skins")
        assert all("path" not in s for s in listing.json()["skins"])
        health = client.get("/health")
        assert health.json()["model"] == base.name
        for text in (r.text, listing.text, health.text):
            assert str(root) not in text and str(base) not in text and str(base.parent) not in text
    finally:
        client.delete("/skins/local")
    r = client.post("/skins", json={"name": "z", "path": "nowhere"})  # errors name the path from the root on
    assert r.status_code == 422 and "<skin-root>/nowhere: no skin.json" in r.json()["detail"]
    assert str(root) not in r.text


@pytest.mark.parametrize("host, allowed", [
    ("localhost", True), ("127.0.0.1:8000", True), ("[::1]:8000", True), ("LOCALHOST", True),
    ("evil.example", False), ("localhost.evil.example", False), ("127.0.0.1.nip.io", False), ("10.0.0.1", False),
])
def test_the_host_header_must_be_allowed(module_bank, host, allowed):
    client = _client(create_app(module_bank), host)
    r = client.get("/health")
    assert r.status_code == (200 if allowed else 400), r.text
    if not allowed:
        assert "Invalid host header" in r.text


def test_allowed_hosts_replace_the_default(module_bank):
    app = create_app(module_bank, allowed_hosts=["api.example", "::2"])
    assert _client(app, "api.example").get("/health").status_code == 200
    assert _client(app, "[::2]:80").get("/health").status_code == 200
    assert _client(app, "localhost").get("/health").status_code == 400


def test_errors_never_show_where_the_skin_root_lies(module_bank, root):
    """POST /skins {"path": "."} is the root itself: its error names it as <skin-root> (issue 24, 3)."""
    client = _client(create_app(module_bank, skin_root=root, allow_skin_management=True))
    for path in (".", "", "nothing-here"):
        r = client.post("/skins", json={"name": "x", "path": path})
        detail = json.dumps(r.json())
        assert r.status_code in (404, 422) and str(root) not in detail and str(root.resolve()) not in detail, detail
