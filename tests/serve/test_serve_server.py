"""The HTTP API: answers, 4xx for every kind of bad input, skins added and removed while serving."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from lntune.serve import create_app

from .conftest import TEXTS, reference_logits


def _body(*rows) -> dict:
    return {"inputs": [{"task": t, "text": x} if isinstance(x, str) else {"task": t, "text": x[0], "text_pair": x[1]}
                       for t, x in rows]}


@pytest.fixture
def served(bert_bank):
    bank, base, skins = bert_bank(("all", "top", "three"))
    app = create_app(bank, max_inputs=16, skin_root=skins["all"].parent, allow_skin_management=True)
    return TestClient(app, base_url="http://localhost"), bank, base, skins


def test_predict_answers_each_row_with_its_skin(served):
    client, bank, base, skins = served
    rows = [("top", TEXTS[1]), ("all", TEXTS[2]), ("three", TEXTS[0]), ("all", TEXTS[5])]
    r = client.post("/predict", json=_body(*rows))
    assert r.status_code == 200
    out = r.json()["outputs"]
    for (name, text), o in zip(rows, out):
        want = reference_logits(bank, skins[name], base, [text])[0]
        assert o["task"] == name and o["logits"] == pytest.approx(want.tolist(), abs=1e-5)
    assert client.get("/health").json()["skins"] == ["all", "top", "three"]
    assert [s["labels"] for s in client.get("/skins").json()["skins"]][2] == ["a", "b", "c"]


def test_unknown_tasks_get_404_with_the_loaded_names(served):
    client, *_ = served
    r = client.post("/predict", json=_body(("all", "x"), ("sst9", "y")))
    assert r.status_code == 404
    assert "unknown task/skin 'sst9'" in r.json()["detail"] and "all, three, top" in r.json()["detail"]
    assert client.delete("/skins/sst9").status_code == 404


def test_over_long_inputs_and_requests_get_413(served):
    client, bank, *_ = served
    r = client.post("/predict", json=_body(("all", ("word " * 100, "word " * 100))))
    assert r.status_code == 413
    assert "more than 128 tokens; this server takes at most 128" in r.json()["detail"]
    assert "shorten" in r.json()["detail"]
    r = client.post("/predict", json=_body(*[("all", "x")] * 17))
    assert r.status_code == 413 and "at most 16 per request" in r.json()["detail"]


@pytest.mark.parametrize("payload", [
    b"{not json",
    b'{"inputs": []}',
    b'{"inputs": [{"task": "all"}]}',
    b'{"inputs": [{"task": "all", "text": 3}]}',
    b'{"inputs": [{"task": "", "text": "x"}]}',
    b'{"inputs": [{"task": "all", "text": "x", "colour": "red"}]}',
    b'{"inputs": {"task": "all", "text": "x"}}',
    b'["all", "x"]',
    b"",
])
def test_malformed_bodies_get_422_saying_what_to_send(served, payload):
    client, *_ = served
    r = client.post("/predict", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "malformed request body" in r.json()["detail"]
    assert '{"inputs": [{"task": "<skin name>", "text"' in r.json()["detail"]  # the example of a good body


def test_skins_are_added_and_removed_while_serving(served):
    client, bank, base, skins = served
    assert client.post("/predict", json=_body(("reg", "x"))).status_code == 404
    r = client.post("/skins", json={"name": "reg", "path": str(skins["reg"])})
    assert r.status_code == 201 and r.json()["head"] == "regression"
    out = client.post("/predict", json=_body(("reg", TEXTS[3]), ("all", TEXTS[3]))).json()["outputs"]
    want = float(reference_logits(bank, skins["reg"], base, [TEXTS[3]])[0, 0])
    assert out[0]["value"] == pytest.approx(want, abs=1e-5)
    assert client.post("/skins", json={"name": "reg", "path": str(skins["reg"])}).status_code == 409
    assert client.delete("/skins/reg").json() == {"removed": "reg"}
    assert client.post("/predict", json=_body(("reg", "x"))).status_code == 404
    assert client.post("/predict", json=_body(("all", "x"))).status_code == 200


def test_bad_skins_are_refused_with_4xx(served, tmp_path):
    client, bank, base, skins = served
    r = client.post("/skins", json={"name": "x", "path": str(skins["all"].parent / "nowhere")})
    assert r.status_code == 422 and "no skin.json" in r.json()["detail"]
    r = client.post("/skins", json={"name": "x", "path": str(tmp_path.parent)})
    assert r.status_code == 403 and "loads skins from under" in r.json()["detail"]
    r = client.post("/skins", json={"name": "bad name!", "path": str(skins["reg"])})
    assert r.status_code == 422 and "skin name" in r.json()["detail"]
    assert client.post("/skins", json={"path": str(skins["reg"])}).status_code == 422


def test_concurrent_requests_do_not_mix_skins(served):
    client, bank, base, skins = served
    names = ["all", "top", "three"]
    want = {(n, i): reference_logits(bank, skins[n], base, [TEXTS[i]])[0].tolist() for n in names for i in range(4)}
    requests = [[(names[(k + j) % 3], (k * 3 + j) % 4) for j in range(k % 4 + 1)] for k in range(24)]
    stop = threading.Event()

    def churn():  # skins come and go beside the requests; the ones they use stay
        while not stop.is_set():
            client.post("/skins", json={"name": "reg", "path": str(skins["reg"])})
            client.delete("/skins/reg")

    def ask(req):
        r = client.post("/predict", json=_body(*[(n, TEXTS[i]) for n, i in req]))
        return req, r.status_code, r.json()["outputs"]

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(ask, requests))
    finally:
        stop.set()
        churner.join()
    for req, status, outs in results:
        assert status == 200
        for (n, i), o in zip(req, outs):
            assert o["task"] == n and o["logits"] == pytest.approx(want[(n, i)], abs=1e-5)
