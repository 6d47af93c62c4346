"""/predict's scheduler (issue 24, 13): concurrent requests share forward passes, a small request beside a large
one runs in the large one's first passes, a pass is bounded in padded tokens, and merging never changes an answer.
Latency figures: benchmarks/serve_load.py."""
from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from lntune.errors import SkinError
from lntune.serve import create_app
from lntune.serve.bank import Rows, UnknownSkin, next_pass
from lntune.serve.batcher import RowBatcher

from .conftest import TEXTS


def rows(lengths: list[int], choices: int = 1) -> Rows:
    """A prepared call whose inputs have these token counts (`choices` sequences each)."""
    feats = [{"input_ids": [[0] * n] * choices if choices > 1 else [0] * n} for n in lengths]
    return Rows(["s"] * len(lengths), feats, [None] * len(lengths))


def drain(calls: list[Rows], batch_size: int, batch_tokens: int) -> list[list[tuple[int, int]]]:
    """Every pass as (call index, row) pairs, rotating the calls as RowBatcher does."""
    order, passes = list(range(len(calls))), []
    while any(c.todo for c in calls):
        picks = next_pass([calls[k] for k in order], batch_size, batch_tokens)
        passes.append([(next(k for k in order if calls[k] is c), i) for c, i in picks])
        order.append(order.pop(0))
    return passes


def test_a_small_call_beside_a_large_one_runs_in_the_first_pass():
    large, small = rows([350] * 256), rows([8])
    passes = drain([large, small], batch_size=64, batch_tokens=1024)
    assert (1, 0) in passes[0]
    assert sorted(i for p in passes for k, i in p if k == 0) == list(range(256))  # every row once
    assert all(len(p) * 350 <= 1024 for p in passes)  # 2 rows of 350 padded tokens, never 3
    assert len(passes) == 1 + 255 // 2 + 1  # the first pass holds one large row and the small one


def test_a_pass_is_bounded_by_inputs_and_padded_tokens_and_holds_at_least_one_input():
    passes = drain([rows([10] * 100)], batch_size=16, batch_tokens=10_000)
    assert [len(p) for p in passes] == [16] * 6 + [4]
    passes = drain([rows([10, 300, 10, 10])], batch_size=64, batch_tokens=100)  # a row wider than the budget
    assert passes == [[(0, 0), (0, 2), (0, 3)], [(0, 1)]]  # a call's rows run shortest first: less padding
    passes = drain([rows([10, 300]), rows([20])], batch_size=64, batch_tokens=100)
    assert passes == [[(0, 0), (1, 0)], [(0, 1)]]


def test_calls_take_turns_one_row_each():
    a, b, c = rows([5] * 4), rows([5] * 4), rows([5])
    passes = drain([a, b, c], batch_size=3, batch_tokens=1000)
    assert passes[0] == [(0, 0), (1, 0), (2, 0)]
    assert passes[1] == [(1, 1), (0, 1), (1, 2)]  # the next pass starts with the next call; c is done
    assert sorted(x for p in passes for x in p) == sorted([(0, i) for i in range(4)] + [(1, i) for i in range(4)]
                                                          + [(2, 0)])


def test_a_pass_holds_one_number_of_choices():
    two, four = rows([5, 5], choices=2), rows([5], choices=4)
    passes = drain([two, four], batch_size=64, batch_tokens=1000)
    assert passes == [[(0, 0), (0, 1)], [(1, 0)]]
    passes = drain([rows([100], choices=4), rows([100], choices=4)], batch_size=64, batch_tokens=500)
    assert passes == [[(0, 0)], [(1, 0)]]  # 2 inputs of 4 choices x 100 tokens would pad to 800


def answers_alone(bank, inputs: list) -> list[dict]:
    return [bank.predict([row])[0] for row in inputs]


def assert_same(got: list[dict], want: list[dict]) -> None:
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        if "probabilities" in w:
            assert g["label"] == w["label"]
            assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-5)
        else:
            assert g["value"] == pytest.approx(w["value"], abs=1e-5)


def concurrent(batcher: RowBatcher, calls: list[list]) -> list:
    """Each call from its own thread, all queued before the first pass ends: the bank's forward lock is held
    until every call waits."""
    out: list = [None] * len(calls)

    def one(k: int) -> None:
        try:
            out[k] = batcher.predict(calls[k])
        except Exception as e:  # noqa: BLE001 - compared by the test
            out[k] = e

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(calls))]
    with batcher.bank._forward:
        for t in threads:
            t.start()
        while len(batcher._calls) < len(calls):  # noqa: SLF001 - wait until all are queued
            threading.Event().wait(0.01)
    for t in threads:
        t.join(timeout=60)
    return out


def test_concurrent_calls_share_passes_and_answer_as_each_row_alone(module_bank):
    names = ["all", "three", "reg"]
    calls = [[(names[(k + j) % 3], TEXTS[(k * 3 + j) % len(TEXTS)]) for j in range(k % 4 + 1)] for k in range(12)]
    batcher = RowBatcher(module_bank)
    got = concurrent(batcher, calls)
    assert batcher.passes < len(calls)
    for call, answers in zip(calls, got, strict=True):
        assert_same(answers, answers_alone(module_bank, call))


def test_a_removed_skin_fails_only_the_calls_that_name_it(module_bank, module_skins):
    module_bank.add_skin("gone", module_skins[1]["all"])
    batcher = RowBatcher(module_bank)
    calls = [[("all", "fine .")], [("gone", "fine ."), ("all", "ok")], [("reg", "ok")]]
    want = [answers_alone(module_bank, c) for c in (calls[0], calls[2])]
    out: list = [None] * 4
    threads = [threading.Thread(target=lambda k=k: out.__setitem__(k, _call(batcher, calls[k]))) for k in range(3)]
    blocker = threading.Thread(target=lambda: out.__setitem__(3, _call(batcher, [("all", "first")])))
    with module_bank._forward:
        blocker.start()
        while batcher.passes < 1:  # the worker holds the blocker's pass, so the three calls wait for the next
            threading.Event().wait(0.01)
        for t in threads:
            t.start()
        while len(batcher._calls) < 4:  # noqa: SLF001 - the blocker and the three
            threading.Event().wait(0.01)
        module_bank.remove_skin("gone")  # checked and queued, then removed before its pass
    for t in [*threads, blocker]:
        t.join(timeout=60)
    assert isinstance(out[1], UnknownSkin) and "'gone'" in str(out[1])
    assert_same(out[0], want[0])
    assert_same(out[2], want[1])


def _call(batcher, inputs):
    try:
        return batcher.predict(inputs)
    except Exception as e:  # noqa: BLE001 - compared by the test
        return e


def test_an_unanswerable_row_fails_its_call_only(module_bank, monkeypatch):
    from lntune.serve import bank as bank_module

    real = bank_module._answer

    def answer(skin, logits, extra):
        if skin.name == "three":
            return real(skin, logits * float("nan"), extra)
        return real(skin, logits, extra)

    monkeypatch.setattr(bank_module, "_answer", answer)
    batcher = RowBatcher(module_bank)
    out = concurrent(batcher, [[("three", "ok")], [("all", "ok")]])
    assert isinstance(out[0], SkinError) and "NaN" in str(out[0])
    assert out[1][0]["label"] in ("negative", "positive")


def test_a_bug_in_a_pass_reaches_every_caller_and_the_worker_goes_on(module_bank, monkeypatch):
    batcher = RowBatcher(module_bank)
    real = module_bank.forward_rows

    def bug(picks):
        with module_bank._forward:  # as the real pass: it waits until every call is queued
            return 1 / 0

    monkeypatch.setattr(module_bank, "forward_rows", bug)
    out = concurrent(batcher, [[("all", "ok")], [("reg", "ok")]])
    assert all(isinstance(e, ZeroDivisionError) for e in out)
    monkeypatch.setattr(module_bank, "forward_rows", real)
    assert batcher.predict([("all", "ok")])[0]["label"] in ("negative", "positive")


def test_over_http_a_small_request_is_answered_while_a_large_one_runs(module_bank, monkeypatch):
    """End to end: the large request is split into passes, and the small one, sent after its first pass began,
    is answered before the large one's last pass."""
    monkeypatch.setattr(module_bank, "batch_tokens", 64)
    passes: list[list[int]] = []
    first_pass = threading.Event()
    real = module_bank.forward_rows

    def spy(picks):
        passes.append([len(c.feats) for c, _ in picks])
        first_pass.set()
        return real(picks)

    monkeypatch.setattr(module_bank, "forward_rows", spy)
    client = TestClient(create_app(module_bank), base_url="http://localhost")
    large = {"inputs": [{"task": "all", "text": TEXTS[1]} for _ in range(40)]}
    result: dict = {}
    with module_bank._forward:  # the large request's passes wait until the small one is sent
        t = threading.Thread(target=lambda: result.setdefault("large", client.post("/predict", json=large)))
        t.start()
        assert first_pass.wait(30)
        s = threading.Thread(target=lambda: result.setdefault("small", client.post(
            "/predict", json={"inputs": [{"task": "reg", "text": "ok"}]})))
        s.start()
        while not any(len(c.feats) == 1 for c in client.app.state.rows_batcher._calls):  # noqa: SLF001
            threading.Event().wait(0.01)
    s.join(60)
    t.join(60)
    assert result["large"].status_code == 200 and result["small"].status_code == 200
    small_pass = next(k for k, p in enumerate(passes) if 1 in p)
    assert 0 < small_pass < len(passes) - 1  # beside the large one, not after it
    assert len(passes) > 3
    assert_same(result["small"].json()["outputs"], answers_alone(module_bank, [("reg", "ok")]))
    assert_same(result["large"].json()["outputs"], answers_alone(module_bank, [("all", TEXTS[1])]) * 40)
