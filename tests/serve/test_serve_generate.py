"""Generation from a SkinBank: every row wears its own skin in prefill and in each cached decoding step.

The reference is each skin applied the normal way (load_skin) to a fresh model, generating alone with
transformers' own generate(): no lntune serving code runs in it."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lntune.serve import SkinBank
from lntune.serve.bank import BASE
from lntune.serve.generate import MAX_STOPS, RowText, Sampling
from lntune.skin import load_skin
from tests.serve.conftest import make_skin

PROMPTS = ["the cat", "a charming and often affecting journey through the ups and downs of", "ok",
           "it is a bad sign when you are rooting for the film to end", "he left", "fine . fine . fine", "w", "xy z"]


def reference(base, skin, prompt_ids: list[int], max_tokens: int, eos: set[int], pad: int, width: int = 0):
    """(tokens, prefill logits) of one prompt, alone, through the skin loaded the normal way; with `width`, the
    logits are those of the prompt left-padded to that many tokens (the padding a batch gives it)."""
    if skin is None:
        from lntune.model import load_model

        model = load_model(str(base), "causal-lm").model
    else:
        model = load_skin(skin, model=str(base))[0].lm.model
    model.eval()
    ids = torch.tensor([prompt_ids])
    with torch.inference_mode():
        if width:
            from lntune.serve.generate import left_pad

            padded, mask, pos = left_pad([prompt_ids, [pad] * width], pad)
            logits = model(input_ids=padded[:1], attention_mask=mask[:1], position_ids=pos[:1]).logits[0, -1]
        else:
            logits = model(input_ids=ids).logits[0, -1]
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                             do_sample=False, eos_token_id=sorted(eos), pad_token_id=pad, temperature=None,
                             top_p=None, top_k=None)
    tokens = out[0, ids.shape[1]:].tolist()
    cut = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
    return tokens[:cut], logits


@pytest.fixture(scope="module")
def banks(tmp_path_factory, tokenizer):
    """{arch: (bank, base, {name: skin dir})} for tiny Llama (RMSNorm gains) and tiny GPT-2 (LN gains+biases)."""
    from tests.conftest import tiny_model

    out = {}
    for arch in ("llama", "gpt2"):
        tmp = tmp_path_factory.mktemp(arch)
        base = tmp / "base"
        tiny_model(arch, "causal-lm", seed=0).save_pretrained(base)
        tokenizer.save_pretrained(base)
        options = [{}, {"layers": "top-half"}, {"terms": "gain"}, {"modules": "ffn"}]
        skins = {f"s{i}": make_skin(base, tmp / f"s{i}", seed=i, options=o, labels=(), head="causal-lm", scale=0.5)
                 for i, o in enumerate(options)}
        bank = SkinBank(str(base), head="causal-lm")
        for name, path in skins.items():
            bank.add_skin(name, path)
        out[arch] = bank, base, skins
    return out


def mixed_requests(skins: dict, n: int) -> list:
    names = [*skins, BASE]
    return [(names[i % len(names)], PROMPTS[i % len(PROMPTS)], Sampling(max_tokens=3 + i % 4)) for i in range(n)]


def check_against_reference(bank, base, skins, requests, padded: bool = False) -> list[str]:
    """Mismatches between the bank's mixed batch and each row generated alone (empty: all equal). `padded`:
    compare prefill logits with the row alone but left-padded as in the batch, which takes padding's own
    float32 rounding (a masked attention kernel) out of the comparison and leaves the skins' mixing in it."""
    got = bank.generate(requests, keep_logits=True)
    width = max(g.prompt_tokens for g in got) if padded else 0
    bad = []
    for i, ((name, prompt, s), g) in enumerate(zip(requests, got)):
        tokens, logits = reference(base, skins.get(name), bank.prompt_ids(i, prompt), s.max_tokens, bank.eos_ids,
                                   bank.lm.tokenizer.pad_token_id, width)
        if g.tokens != tokens:
            bad.append(f"row {i} ({name}): tokens {g.tokens} != {tokens}")
        # float32 rounding grows with the logits' size and with the kernels a CPU picks for a batch of another
        # shape (AVX-512/AMX on a newer Xeon: 5e-5 on SmolLM2's logits near 20); a wrong skin moves them by 0.1+
        diff, tol = (g.logits - logits).abs().max().item(), max(1e-5, 5e-6 * logits.abs().max().item())
        if diff > tol:
            bad.append(f"row {i} ({name}): prefill logits differ by {diff:.2e}")
    return bad


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("n", [2, 8])
def test_mixed_batch_generates_what_each_skin_generates_alone(banks, arch, n):
    bank, base, skins = banks[arch]
    requests = mixed_requests(skins, n)
    assert len({name for name, _, _ in requests}) == min(n, 5)  # 2 skins, or all 4 and the base
    assert check_against_reference(bank, base, skins, requests) == []


def test_a_wrong_gather_is_caught(banks, monkeypatch):
    """The check above can fail: rows given their neighbour's skin must show up as mismatches."""
    from lntune.serve import mixed

    bank, base, skins = banks["llama"]
    real = mixed.Route.set

    def shifted(self, slots, device="cpu"):
        real(self, slots[1:] + slots[:1], device)

    monkeypatch.setattr(mixed.Route, "set", shifted)
    assert check_against_reference(bank, base, skins, mixed_requests(skins, 5)) != []


def test_rows_stop_at_their_own_eos_and_max_tokens(banks, monkeypatch):
    bank, base, skins = banks["llama"]
    free = bank.generate([("s0", PROMPTS[1], Sampling(max_tokens=6))])[0].tokens
    stop, real = free[2], bank.eos_ids
    monkeypatch.setattr(type(bank), "eos_ids", property(lambda self: real | {stop}))
    got = bank.generate([("s0", PROMPTS[1], Sampling(max_tokens=6)), ("s1", PROMPTS[0], Sampling(max_tokens=2))])
    first = free.index(stop)
    assert got[0].tokens == free[:first] and got[0].finish_reason == "stop"
    assert len(got[1].tokens) == 2 and got[1].finish_reason == "length"


def test_seeded_sampling_does_not_depend_on_batch_mates(banks):
    bank, _, _ = banks["gpt2"]
    hot = Sampling(max_tokens=6, temperature=1.5, top_p=0.9, seed=11)
    alone = bank.generate([("s2", PROMPTS[3], hot)])[0].tokens
    mixed = bank.generate([("s0", PROMPTS[1], Sampling(max_tokens=4, temperature=0.7, seed=1)), ("s2", PROMPTS[3], hot),
                           (BASE, PROMPTS[2], Sampling(max_tokens=5))])[1].tokens
    other = bank.generate([("s2", PROMPTS[3], Sampling(max_tokens=6, temperature=1.5, top_p=0.9, seed=12))])[0]
    assert mixed == alone and other.tokens != alone


def test_tokens_stream_as_they_are_chosen(banks):
    bank, _, _ = banks["llama"]
    seen: dict[int, list[int]] = {}
    got = bank.generate(mixed_requests(banks["llama"][2], 4), on_token=lambda r, t: seen.setdefault(r, []).append(t))
    assert [seen[i] for i in range(4)] == [g.tokens for g in got]


def test_a_row_whose_reader_leaves_stops_and_its_batch_mates_do_not(banks):
    bank, _, _ = banks["llama"]
    requests = [(name, PROMPTS[i], Sampling(max_tokens=6)) for i, name in enumerate(["s0", "s1", BASE])]
    want = bank.generate(requests)
    assert len(want[1].tokens) > 1
    got = bank.generate(requests, on_token=lambda row, token: row != 1)  # row 1's reader leaves at once
    assert got[1].finish_reason == "cancelled" and got[1].tokens == want[1].tokens[:1]
    assert [(g.tokens, g.finish_reason) for g in (got[0], got[2])] == \
        [(g.tokens, g.finish_reason) for g in (want[0], want[2])]


class _Pieces:
    """A tokenizer whose tokens decode to fixed strings: RowText's pieces can be predicted exactly."""

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = vocab

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(self.vocab[i] for i in ids)


def _shown(vocab: list[str], tokens: list[int], stop: tuple[str, ...]) -> tuple[list[str], str, bool]:
    text = RowText(_Pieces(vocab), stop)
    pieces = []
    for t in tokens:
        pieces.append(text.push(t))
        if text.stopped:
            break
    pieces.append(text.flush())
    return pieces, text.text, text.stopped


def test_row_text_holds_back_what_a_stop_string_may_claim():
    vocab = ["Hel", "lo", " w", "or", "l", "d!", " wa", "ve"]
    pieces, text, stopped = _shown(vocab, [0, 1, 2, 3, 4, 5], ("world",))
    assert (pieces, text, stopped) == (["Hel", "lo", " ", "", "", "", ""], "Hello ", True)
    pieces, text, stopped = _shown(vocab, [0, 1, 6, 7], ("world",))  # " w" was held, then released by "a"
    assert (pieces, text, stopped) == (["Hel", "lo", " wa", "ve", ""], "Hello wave", False)
    pieces, _, _ = _shown(["a", "\ufffd", "b"], [0, 1, 2], ())  # half a character waits for the rest
    assert pieces == ["a", "", "\ufffdb", ""]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(tokens=st.lists(st.integers(0, 5), max_size=12),
       stop=st.lists(st.text("abc", min_size=1, max_size=3), max_size=MAX_STOPS).map(tuple))
def test_row_text_shows_exactly_the_text_before_the_first_stop(tokens, stop):
    vocab = ["a", "b", "c", "ab", "ca", "bca"]
    full = "".join(vocab[t] for t in tokens)
    hits = [i for i in (full.find(s) for s in stop) if i >= 0]
    pieces, text, stopped = _shown(vocab, tokens, stop)
    assert "".join(pieces) == text == full[: min(hits, default=len(full))]
    assert stopped == bool(hits)


def test_stop_strings_end_rows_in_a_mixed_batch(banks):
    bank, _, _ = banks["llama"]
    rows = [("s0", PROMPTS[0], Sampling(max_tokens=10)), ("s1", PROMPTS[1], Sampling(max_tokens=10))]
    free = bank.generate(rows)
    stop = free[0].text[4:7]
    assert len(stop) == 3 and free[0].text == bank.decode(free[0].tokens)
    shown: dict[int, str] = {}
    got = bank.generate([(rows[0][0], rows[0][1], Sampling(max_tokens=10, stop=(stop,))), rows[1]],
                        on_text=lambda row, piece: shown.update({row: shown.get(row, "") + piece}))
    assert (got[0].text, got[0].finish_reason) == (free[0].text[: free[0].text.find(stop)], "stop")
    assert (got[1].tokens, got[1].text) == (free[1].tokens, free[1].text)  # its batch-mate runs on
    assert shown == {0: got[0].text, 1: got[1].text}


@pytest.mark.parametrize("request_, match", [
    (("nope", "hi", Sampling()), "unknown task/skin 'nope'"),
    (("s0", "", Sampling()), "the prompt is empty"),
    (("s0", "hi", Sampling(max_tokens=0)), "max_tokens 0"),
    (("s0", "hi", Sampling(temperature=-1.0)), "temperature"),
    (("s0", "hi", Sampling(top_p=0.0)), "top_p"),
    (("s0", "hi", Sampling(stop=("",))), "non-empty strings"),
    (("s0", "hi", Sampling(stop=tuple("abcde"))), "at most 4"),
    (("s0", "hi", Sampling(max_tokens=500)), "exceed the 128 positions"),
    (("s0", 5, Sampling()), "give a prompt"),
    (("s0", [{"role": "user"}], Sampling()), "string \"role\" and \"content\""),
])
def test_bad_generation_requests_are_refused_with_the_fix(banks, request_, match):
    from lntune.errors import LntuneError

    with pytest.raises(LntuneError, match=match):
        banks["llama"][0].generate([request_])


def test_a_generation_bank_refuses_classification_skins_and_predict(banks, skins_for):
    from lntune.errors import LntuneError, SkinError

    bank = banks["llama"][0]
    with pytest.raises(LntuneError, match="use /v1/completions"):
        bank.predict([("s0", "hi")])
    _, cls_skins = skins_for("llama", only=("all",))
    with pytest.raises(SkinError):
        bank.add_skin("cls", cls_skins["all"])


def test_smollm2_mixed_batch_equals_each_skin_alone(tmp_path):
    """The real decoder (SmolLM2-135M, RMSNorm, chat template): 2 skins and the base in one batch."""
    skins = {f"s{i}": make_skin("smollm2", tmp_path / f"s{i}", seed=i, options=o, labels=(), head="causal-lm",
                                scale=0.05) for i, o in enumerate([{}, {"layers": "top-half"}])}
    bank = SkinBank("smollm2", head="causal-lm")
    for name, path in skins.items():
        bank.add_skin(name, path)
    chat = [{"role": "user", "content": "Name a colour."}]
    requests = [("s0", "The capital of France is", Sampling(max_tokens=4)), (BASE, chat, Sampling(max_tokens=3)),
                ("s1", chat, Sampling(max_tokens=4))]
    # Unpadded, row 0's prefill logits differ by up to 8e-5 (of logits near 20: float32 rounding of the masked
    # attention over its padding); its tokens are the same. Padded alike, the skins' mixing is exact to float32
    # rounding (5e-6 of the largest logit).
    assert check_against_reference(bank, "smollm2", skins, requests, padded=True) == []


def test_skins_come_and_go_while_a_generation_runs(banks):
    """Adding, removing and replacing skins does not wait for a generation in flight, and the rows in flight
    keep the values they started with."""
    import threading

    bank, _, skins = banks["llama"]
    requests = mixed_requests(skins, 5)
    want = [g.tokens for g in bank.generate(requests)]
    changed = threading.Event()
    rows = bank._norm_table.table.data.shape[0]

    def churn():
        bank.add_skin("late", skins["s1"])
        bank.remove_skin("s2")  # in flight: its row must not be reused before the batch ends
        bank.add_skin("s2", skins["s3"])  # a new s2, with other values, in another row
        bank.add_skin("s0", skins["s3"], replace=True)
        changed.set()

    def on_token(row, token):
        if row == 0 and not changed.is_set():
            threading.Thread(target=churn).start()
            assert changed.wait(10), "skin management waited for the generation"

    try:
        assert [g.tokens for g in bank.generate(requests, on_token=on_token)] == want
        assert changed.is_set()
        assert bank._norm_table.table.data.shape[0] > rows  # the tables grew (new views) mid-generation
        after = bank.generate([("s2", requests[2][1], requests[2][2])])[0].tokens
        alone = bank.generate([("s3", requests[2][1], requests[2][2])])[0].tokens
        assert after == alone  # the new s2 wears s3's values
    finally:
        bank.remove_skin("late")
        bank.add_skin("s2", skins["s2"], replace=True)
        bank.add_skin("s0", skins["s0"], replace=True)
    assert [g.tokens for g in bank.generate(requests)] == want
    assert not bank._retired and sorted(bank._slots.values()) == sorted(set(bank._slots.values()))


def test_concurrent_requests_share_a_batch_and_get_their_own_rows(banks):
    import threading

    from lntune.serve.batcher import Batcher

    bank, _, skins = banks["llama"]
    requests = mixed_requests(skins, 8)
    want = [g.tokens for g in bank.generate(requests)]
    batcher = Batcher(bank, window=0.3)
    got, streamed = {}, {}
    barrier = threading.Barrier(8)

    def ask(i):
        barrier.wait()
        got[i] = batcher.generate([requests[i]], on_token=lambda r, t: streamed.setdefault(i, []).append(t))[0].tokens

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [got[i] for i in range(8)] == want and [streamed[i] for i in range(8)] == want
    assert batcher.batches < 8  # merged: 8 requests, fewer batches


def test_a_request_whose_skin_goes_away_fails_alone(banks):
    import threading
    import time

    from lntune.errors import LntuneError
    from lntune.serve.batcher import Batcher

    bank, _, skins = banks["llama"]
    bank.add_skin("brief", skins["s1"])
    batcher = Batcher(bank, window=0.3)
    out = {}

    def ask(name, key):
        try:
            out[key] = batcher.generate([(name, "the cat", Sampling(max_tokens=3))])[0].tokens
        except LntuneError as e:
            out[key] = e

    threads = [threading.Thread(target=ask, args=a) for a in (("s0", "ok"), ("brief", "gone"))]
    for t in threads:
        t.start()
    time.sleep(0.1)
    bank.remove_skin("brief")  # after both were checked, before their batch runs
    for t in threads:
        t.join(30)
    assert out["ok"] == bank.generate([("s0", "the cat", Sampling(max_tokens=3))])[0].tokens
    assert "unknown task/skin 'brief'" in str(out["gone"])
    assert batcher.batches == 3  # the merged batch failed before any token; then each request alone
