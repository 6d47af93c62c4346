"""Bodies JSON cannot be read from get a 422 that says why, on /predict and /v1 alike (issue 24 #12: before, a
generic 400 "There was an error parsing the body")."""
import pytest
from fastapi.testclient import TestClient

from lntune.serve.bank import SkinBank
from lntune.serve.server import create_app

BODIES = [
    (b'{"inputs": [{"task": "a", "text": "\xff\xfe"}]}', "the body is not UTF-8 text (byte 0xff at position 35)"),
    (b'{"inputs": [], "x": ' + b"9" * 5000 + b"}", "the body holds a number with more than 4300 digits"),
    (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "the body nests arrays or objects too deeply"),
]


@pytest.fixture(scope="module")
def client(tokenizer):
    import transformers as tf

    from lntune.model import wrap

    config = tf.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, num_labels=2)
    lm = wrap(tf.AutoModelForSequenceClassification.from_config(config), tokenizer, "tiny", "classification",
              ("classifier.bias", "classifier.weight"))
    return TestClient(create_app(SkinBank(lm), max_body_bytes=2_000_000), base_url="http://127.0.0.1:8000")


@pytest.mark.parametrize("path", ["/predict", "/v1/completions", "/v1/chat/completions"])
@pytest.mark.parametrize("body,words", BODIES, ids=["not-utf8", "5000-digits", "deep"])
def test_unreadable_bodies_are_422_saying_why(client, path, body, words):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and words in r.json()["detail"], r.text[:300]


def test_a_readable_body_is_read_once_and_answered_as_before(client):
    r = client.post("/predict", json={"inputs": [{"task": "nope", "text": "x"}]})
    assert r.status_code == 404 and "unknown task/skin 'nope'" in r.json()["detail"]
    r = client.post("/predict", content=b'{"inputs": [', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
