"""The OpenAI-compatible endpoints, called with the official `openai` client over real HTTP (uvicorn in a
thread), and fuzzed: auth, limits and no 500s hold here as on /predict."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from lntune.serve import SkinBank, create_app
from lntune.serve.bank import BASE
from lntune.serve.generate import Sampling
from tests.serve.conftest import make_skin

openai = pytest.importorskip("openai")
KEY = "test-key"
CHAT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the cat sat on"}]


@pytest.fixture(scope="module")
def gen_bank(tmp_path_factory, tokenizer):
    import copy

    from tests.conftest import tiny_model
    from tests.data.test_local_gen import CHATML

    tmp = tmp_path_factory.mktemp("gen")
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = CHATML  # the tiny model's tokenizer gets a chat template, as SmolLM2's has
    base = tmp / "base"
    tiny_model("llama", "causal-lm", seed=0).save_pretrained(base)
    tok.save_pretrained(base)
    skins = {n: make_skin(base, tmp / n, seed=i, labels=(), head="causal-lm", scale=0.5)
             for i, n in enumerate(("alpha", "beta"))}
    bank = SkinBank(str(base), head="causal-lm")
    for name, path in skins.items():
        bank.add_skin(name, path)
    return bank


@pytest.fixture(scope="module")
def server(gen_bank):
    """A real HTTP server on a free port: the client's streaming goes through real sockets."""
    import uvicorn

    app = create_app(gen_bank, max_inputs=4, api_key=KEY, allowed_hosts=["127.0.0.1"])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1"
    srv.should_exit = True
    thread.join(5)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server, api_key=KEY, max_retries=0)


def direct(bank, name, prompt, n=6) -> str:
    return bank.decode(bank.generate([(name, prompt, Sampling(max_tokens=n))])[0].tokens)


def test_models_lists_the_base_and_the_skins(client):
    assert sorted(m.id for m in client.models.list()) == sorted([BASE, "alpha", "beta"])


def test_completions_equal_the_bank(client, gen_bank):
    r = client.completions.create(model="alpha", prompt=["the cat", "a long day at the"], max_tokens=6,
                                  temperature=0)
    assert [c.text for c in r.choices] == [direct(gen_bank, "alpha", p) for p in ("the cat", "a long day at the")]
    assert [c.finish_reason for c in r.choices] == ["length", "length"]
    assert r.usage.completion_tokens == 12 and r.usage.prompt_tokens == sum(
        len(gen_bank.prompt_ids(0, p)) for p in ("the cat", "a long day at the"))


def test_chat_completion_equals_the_bank(client, gen_bank):
    r = client.chat.completions.create(model="beta", messages=CHAT, max_tokens=6, temperature=0)
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == direct(gen_bank, "beta", CHAT)
    assert r.object == "chat.completion" and r.model == "beta"


def test_streams_add_up_to_the_whole_answer(client, gen_bank):
    chunks = list(client.chat.completions.create(model="alpha", messages=CHAT, max_tokens=6, temperature=0,
                                                 stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == direct(gen_bank, "alpha", CHAT) and len(chunks) >= 3
    assert chunks[-1].choices[0].finish_reason == "length"
    pieces = list(client.completions.create(model=BASE, prompt="the cat", max_tokens=5, temperature=0, stream=True))
    assert "".join(p.choices[0].text for p in pieces) == direct(gen_bank, BASE, "the cat", 5)


def test_stop_strings_end_the_answer_before_them(client, gen_bank):
    free = direct(gen_bank, "alpha", "the cat", 12)
    stop = free[len(free) // 2 : len(free) // 2 + 3]  # a string from the middle of the free answer
    want = free[: free.find(stop)]
    r = client.completions.create(model="alpha", prompt="the cat", max_tokens=12, temperature=0, stop=[stop, "zzzz"])
    assert (r.choices[0].text, r.choices[0].finish_reason) == (want, "stop")
    pieces = list(client.completions.create(model="alpha", prompt="the cat", max_tokens=12, temperature=0,
                                            stop=stop, stream=True))
    assert "".join(p.choices[0].text for p in pieces) == want and pieces[-1].choices[0].finish_reason == "stop"
    chat = client.chat.completions.create(model="alpha", messages=CHAT, max_tokens=8, temperature=0, stop="zzzz")
    assert chat.choices[0].message.content == direct(gen_bank, "alpha", CHAT, 8)  # a stop that never comes


def test_n_choices_per_prompt(client, gen_bank):
    hot = {"max_tokens": 6, "temperature": 1.3, "seed": 5}
    r = client.completions.create(model="alpha", prompt=["the cat", "a dog"], n=2, **hot)
    want = [gen_bank.generate([("alpha", p, Sampling(max_tokens=6, temperature=1.3, seed=5 + j))])[0].text
            for p in ("the cat", "a dog") for j in range(2)]
    assert [c.index for c in r.choices] == [0, 1, 2, 3] and [c.text for c in r.choices] == want
    assert want[0] != want[1] and r.usage.completion_tokens == 4 * 6
    chat = client.chat.completions.create(model="beta", messages=CHAT, n=3, max_tokens=5, temperature=0)
    assert [c.index for c in chat.choices] == [0, 1, 2]
    assert {c.message.content for c in chat.choices} == {direct(gen_bank, "beta", CHAT, 5)}  # greedy: all alike
    chunks = list(client.chat.completions.create(model="beta", messages=CHAT, n=2, max_tokens=5, temperature=1.3,
                                                 seed=5, stream=True))
    streamed = ["".join(c.choices[0].delta.content or "" for c in chunks if c.choices[0].index == j) for j in (0, 1)]
    alone = [gen_bank.generate([("beta", CHAT, Sampling(max_tokens=5, temperature=1.3, seed=5 + j))])[0].text
             for j in (0, 1)]
    assert streamed == alone


def test_streams_end_with_usage_when_asked(client, gen_bank):
    kw = {"model": "alpha", "max_tokens": 5, "temperature": 0, "stream": True,
          "stream_options": {"include_usage": True}}
    want = gen_bank.generate([("alpha", CHAT, Sampling(max_tokens=5))])[0]
    *pieces, last = client.chat.completions.create(messages=CHAT, **kw)
    assert all(p.usage is None for p in pieces) and last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (want.prompt_tokens, len(want.tokens))
    *_, last = client.completions.create(prompt=["the cat", "a dog"], **kw)
    assert last.choices == [] and last.usage.completion_tokens == 10 and last.usage.total_tokens > 10
    no_usage = list(client.completions.create(prompt="the cat", **{**kw, "stream_options": None}))
    assert all(p.usage is None for p in no_usage)


def test_seeded_sampling_repeats(client):
    def ask(seed):
        return client.completions.create(model="alpha", prompt="the cat", max_tokens=8, temperature=1.2,
                                         top_p=0.95, seed=seed).choices[0].text

    assert ask(3) == ask(3)
    assert len({ask(s) for s in range(4)}) > 1


@pytest.fixture
def slow_bank(gen_bank, monkeypatch):
    """gen_bank with 20 ms per forward pass, and the results of every generate call in `done`."""
    import functools

    forward = gen_bank.lm.model.forward

    @functools.wraps(forward)  # keeps the signature generate_rows inspects
    def slow(*args, **kwargs):
        time.sleep(0.02)
        return forward(*args, **kwargs)

    monkeypatch.setattr(gen_bank.lm.model, "forward", slow)
    done, generate = [], gen_bank.generate
    monkeypatch.setattr(gen_bank, "generate", lambda *a, **k: done.append(generate(*a, **k)) or done[-1])
    return gen_bank, done


def _finished(done: list) -> list:
    deadline = time.monotonic() + 20
    while not done and time.monotonic() < deadline:
        time.sleep(0.05)
    return done


def test_a_stream_whose_client_leaves_stops_generating(server, slow_bank):
    """Closing the connection mid-stream stops the row at its next token, not at max_tokens."""
    import httpx

    bank, done = slow_bank
    prompt, n = "the cat", 100
    assert direct_gen(bank, prompt, n).finish_reason == "length"  # left alone, it runs all 100 tokens
    done.clear()
    body = {"model": "alpha", "prompt": prompt, "max_tokens": n, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server}/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        events = (line for line in r.iter_lines() if line.startswith("data: {"))
        for _ in range(3):
            next(events)
    [(row,)] = _finished(done)
    assert row.finish_reason == "cancelled" and 3 <= len(row.tokens) < 20  # measured: 4


def test_a_request_whose_client_times_out_stops_generating(server, slow_bank):
    """Without streaming too: the waiting request notices the closed connection and its row stops."""
    import httpx

    bank, done = slow_bank
    body = {"model": "alpha", "prompt": "the cat", "max_tokens": 100, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server}/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=0.5)
    [(row,)] = _finished(done)
    assert row.finish_reason == "cancelled" and 5 <= len(row.tokens) < 50  # 20 ms a token; measured: 19-20


def direct_gen(bank, prompt, n):
    return bank.generate([("alpha", prompt, Sampling(max_tokens=n))])[0]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"model": "nope"}, "NotFoundError", "unknown task/skin 'nope'"),
    ({"best_of": 3}, "UnprocessableEntityError", "unsupported field"),
    ({"prompt": ["a", "b"], "n": 3}, "APIStatusError", "at most 4 choices"),
    ({"presence_penalty": 0.5}, "UnprocessableEntityError", "unsupported field"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "UnprocessableEntityError", "at most 4 non-empty stop strings"),
    ({"stop": ""}, "UnprocessableEntityError", "non-empty stop strings"),
    ({"max_tokens": 1000}, "APIStatusError", "exceed the 128 positions"),
    ({"prompt": ["a"] * 5}, "APIStatusError", "at most 4"),
    ({"temperature": 3}, "UnprocessableEntityError", "temperature"),
    ({"stream_options": {"include_usage": True}}, "UnprocessableEntityError", "only with stream: true"),
    ({"stream": True, "stream_options": {"include_usage": True, "x": 1}}, "UnprocessableEntityError", "x"),
])
def test_refusals_reach_the_client_with_the_fix(client, kwargs, error, match):
    args = {"model": "alpha", "prompt": "hi", "max_tokens": 4, **kwargs}
    with pytest.raises(getattr(openai, error), match=match) as e:
        client.completions.create(**args)
    assert e.value.status_code in (404, 413, 422)


def test_the_api_key_is_required(server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server, api_key="wrong", max_retries=0).models.list()


def test_a_classification_server_says_to_use_predict(module_bank):
    http = TestClient(create_app(module_bank), base_url="http://localhost")
    r = http.post("/v1/completions", json={"model": "all", "prompt": "hi"})
    assert r.status_code == 422 and "use POST /predict" in r.json()["error"]["message"]


schemathesis = pytest.importorskip("schemathesis")


# negative: bodies that break the schema; GET /v1/models takes no input to break
@pytest.mark.parametrize("operation, mode", [(o, m) for o in ("POST /v1/completions", "POST /v1/chat/completions")
                                             for m in ("positive", "negative")] + [("GET /v1/models", "positive")])
def test_no_generation_request_gets_a_500(gen_bank, operation, mode):
    from hypothesis import HealthCheck, given, settings

    app = create_app(gen_bank, max_inputs=4, api_key=KEY, allowed_hosts=["testserver"], max_body_bytes=20_000)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Authorization": f"Bearer {KEY}"})
    method, path = operation.split()

    def one(case):
        if isinstance(case.body, dict) and isinstance(case.body.get("max_tokens"), int):
            case.body["max_tokens"] = min(case.body["max_tokens"], 4)  # keep each draw fast; limits tested above
        response = case.call(headers={"Authorization": f"Bearer {KEY}"})
        assert response.status_code < 500, (case.body, response.text)

    run = given(case=schema[path][method].as_strategy(schemathesis.GenerationMode(mode)))(one)
    settings(max_examples=20, deadline=None, derandomize=True,
             suppress_health_check=list(HealthCheck))(run)()
