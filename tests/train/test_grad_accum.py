"""Gradient accumulation (issue 16): `grad_accum=N` at batch size B makes the update of one step on a batch of
N x B, for both optimizers, for sequence heads (a mean over rows) and for a causal LM (a mean over target tokens,
which micro-batches hold in unequal numbers). Dropout is off, so the reference is exact up to float summation."""
import random

import pytest
import torch

from lntune.heads import encode, get_head
from lntune.method import build_method, prepare
from lntune.train import train
from lntune.train.step import micro_batches

from .test_loop import config, feats


def _no_dropout(lm):
    for m in lm.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return lm


def _lm_feats(lm, n, seed):
    rng = random.Random(seed)
    words = ["name", "food", "area", "price", "near", "river", "cheap", "city"]
    rows = [{"prompt": " ".join(rng.choices(words, k=rng.randint(1, 6))),
             "target": " ".join(rng.choices(words, k=rng.randint(1, 8)))} for _ in range(n)]
    return encode(rows, lm.tokenizer, "causal-lm", 32)


def _run(make_lm, arch, head, make_feats, **kw):
    lm = _no_dropout(make_lm(arch, head))
    tuning = prepare(lm, build_method("ln"))
    result = train(tuning, make_feats(lm, 40, 1), make_feats(lm, 16, 2), config(lr=1e-2, epochs=2, **kw))
    return result, tuning.state()


CASES = {
    "bert classification, packed": ("bert", "classification", feats, {}),
    "bert classification, per-tensor AdamW": ("bert", "classification", feats, {"packed": False}),
    "llama causal LM (token means)": ("llama", "causal-lm", _lm_feats, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_accumulated_steps_equal_one_large_batch(make_lm, one_thread, case):
    arch, head, make_feats, kw = CASES[case]
    ref, ref_state = _run(make_lm, arch, head, make_feats, batch_size=8, **kw)
    got, got_state = _run(make_lm, arch, head, make_feats, batch_size=2, grad_accum=4, **kw)
    assert got.steps == ref.steps == 2 * 5  # 40 examples: 5 optimizer steps an epoch either way
    assert got.losses == pytest.approx(ref.losses, abs=1e-5)
    moved = max((ref_state[k] - got_state[k]).abs().max().item() for k in ref_state)
    assert moved <= 1e-5
    # and the comparison can fail: the same micro-batches stepped one by one do not match
    small, small_state = _run(make_lm, arch, head, make_feats, batch_size=2, **kw)
    assert max((ref_state[k] - small_state[k]).abs().max().item() for k in ref_state) > 1e-3


def test_micro_batch_weights_are_shares_of_the_loss_terms():
    labels = torch.tensor([[-100, 5, 6, -100], [-100, -100, 7, 8], [-100, 1, -100, -100]])
    batch = {"input_ids": torch.zeros(3, 4, dtype=torch.long), "labels": labels}
    # a causal LM never predicts the first token: its label does not count
    assert get_head("causal-lm").loss_terms(batch["labels"]) == 2 + 2 + 1
    assert get_head("token-classification").loss_terms(batch["labels"]) == 2 + 2 + 1
    assert get_head("classification").loss_terms(torch.tensor([1, 0, 1])) == 3
    parts = micro_batches(batch, 2, "causal-lm")
    assert [c["labels"].shape[0] for c, _ in parts] == [2, 1]
    assert [w for _, w in parts] == pytest.approx([4 / 5, 1 / 5])
    assert torch.equal(torch.cat([c["input_ids"] for c, _ in parts]), batch["input_ids"])
    # more parts than rows: one row each; a part without any labelled token is left out (its mean is NaN)
    empty = {"labels": torch.tensor([[-100, 3], [-100, -100]])}
    assert [w for _, w in micro_batches(empty, 4, "causal-lm")] == [1.0]


def test_grad_accum_is_validated():
    from lntune.errors import TrainingError

    with pytest.raises(TrainingError, match="--grad-accum 0: must be an integer >= 1"):
        config(grad_accum=0)
