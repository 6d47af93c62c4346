"""Token-classification and multiple-choice skins served: mixed batches answer what each skin answers alone,
encoded the way training encodes (lntune.data.encode)."""
from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient

from lntune.data.encode import collate
from lntune.heads import IGNORE, encode
from lntune.serve import SkinBank, create_app
from lntune.skin import load_skin
from tests.serve.conftest import make_skin

TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
SENTENCES = ["john lives in paris", "the unflinchingly bleak film ends early", "ok", "mary and peter met in rome today"]
QUESTIONS = [{"question": "where is paris ?", "choices": ["france", "spain", "a cat"]},
             {"question": "sky colour ?", "choices": ["blue", "green", "red"], "context": "on a clear day"},
             {"question": "two plus two", "choices": ["four", "five", "three"]}]


def alone(base, skin_dir, example: dict, head: str) -> torch.Tensor:
    tuning, _ = load_skin(skin_dir, model=str(base))
    model = tuning.lm.model.eval()
    feats = encode([example], tuning.lm.tokenizer, head, 128)
    with torch.inference_mode():
        logits = model(**{k: v for k, v in collate(feats, tuning.lm.tokenizer.pad_token_id).items()
                          if k != "labels"}).logits[0]
    if head == "token-classification":
        return logits[torch.tensor(feats[0]["labels"]) != IGNORE].argmax(-1)
    return logits


@pytest.fixture
def token_bank(tiny_dir, tmp_path):
    base = tiny_dir("bert")
    skins = {f"ner{i}": make_skin(base, tmp_path / f"ner{i}", seed=i, labels=TAGS[: 3 + 2 * i],
                                  head="token-classification", scale=0.8) for i in range(2)}
    bank = SkinBank(str(base), head="token-classification")
    for n, p in skins.items():
        bank.add_skin(n, p)
    return bank, base, skins


def test_token_classification_skins_mix_per_row(token_bank):
    bank, base, skins = token_bank
    rows = [(f"ner{i % 2}", s) for i, s in enumerate(SENTENCES)]
    for (name, text), out in zip(rows, bank.predict(rows)):
        words = text.split()
        want = alone(base, skins[name], {"tokens": words, "tags": [0] * len(words)}, "token-classification")
        assert out["words"] == words and out["label_ids"] == want.tolist()
        assert out["labels"] == [TAGS[j] for j in want.tolist()]
    assert bank.predict([("ner0", ["new", "york"])])[0]["words"] == ["new", "york"]


def test_multiple_choice_skins_mix_per_row(tiny_dir, tmp_path):
    base = tiny_dir("bert")
    skins = {f"mc{i}": make_skin(base, tmp_path / f"mc{i}", seed=i, labels=("A", "B", "C"), head="multiple-choice",
                                 scale=0.8) for i in range(2)}
    bank = SkinBank(str(base), head="multiple-choice")
    for n, p in skins.items():
        bank.add_skin(n, p)
    rows = [(f"mc{i % 2}", q) for i, q in enumerate(QUESTIONS)]
    for (name, q), out in zip(rows, bank.predict(rows)):
        want = alone(base, skins[name], {"context": q.get("context", ""), "label": 0, **q}, "multiple-choice")
        assert torch.allclose(torch.tensor(out["logits"]), want, atol=1e-5)
        assert out["choice"] == q["choices"][int(want.argmax())] and out["label"] == "ABC"[int(want.argmax())]
    http = TestClient(create_app(bank), base_url="http://localhost")
    r = http.post("/predict", json={"inputs": [{"task": "mc1", "text": "sky colour ?", "choices": ["a", "b", "c"]}]})
    assert r.status_code == 200 and r.json()["outputs"][0]["choice"] in ("a", "b", "c")
    r = http.post("/predict", json={"inputs": [{"task": "mc1", "text": "sky colour ?", "choices": ["a", "b"]}]})
    assert r.status_code == 422 and "trained on 3" in r.json()["detail"]
    r = http.post("/predict", json={"inputs": [{"task": "mc1", "text": "no choices"}]})
    assert r.status_code == 422 and "multiple-choice questions" in r.json()["detail"]


def test_token_skins_over_http_and_bad_inputs(token_bank):
    bank = token_bank[0]
    http = TestClient(create_app(bank), base_url="http://localhost")
    r = http.post("/predict", json={"inputs": [{"task": "ner1", "text": "john lives in paris"}]})
    assert r.status_code == 200 and len(r.json()["outputs"][0]["labels"]) == 4
    r = http.post("/predict", json={"inputs": [{"task": "ner1", "text": "   "}]})
    assert r.status_code == 422 and "list of words" in r.json()["detail"]
