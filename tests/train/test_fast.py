"""The step's speed-ups leave the training algorithm as it was: dropout keeps its rate, scale and
placement (only the random numbers differ), attention is SDPA's math, the last-block cut and the
packed optimizer change no loss and no update."""
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from lntune.data.encode import collate
from lntune.method import build_method, prepare
from lntune.train import TrainConfig
from lntune.train.fast import FastDropout
from lntune.train.rows import cutting, find_cut
from lntune.train.split import probes
from lntune.train.step import Step

from .test_loop import feats


def test_dropout_keeps_rate_scale_and_seed():
    x = torch.ones(200_000, requires_grad=True)
    torch.manual_seed(0)
    with FastDropout():
        y = F.dropout(x, 0.3, training=True)
        z = torch.nn.Dropout(0.3)(x)
        same = F.dropout(x, 0.3, training=False)
    assert abs((y == 0).float().mean().item() - 0.3) < 0.005
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.7))
    assert not torch.equal(y, z) and torch.equal(same, x)
    torch.manual_seed(0)
    with FastDropout():
        again = F.dropout(x, 0.3, training=True)
    assert torch.equal(again, y)  # a seed fixes the masks
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # backward through the same mask and scale


CASES = {
    "no mask": dict(mask=None),
    "bool mask, one row sees nothing": dict(mask="bool"),
    "float mask": dict(mask="float"),
    "causal": dict(mask=None, is_causal=True),
    "grouped kv heads": dict(mask="bool", kv_heads=2),
    "only values train": dict(mask="float", frozen=("q", "k")),
}


@pytest.mark.parametrize("case", CASES)
def test_attention_dropout_is_sdpa_math_with_the_same_mask(case):
    c = CASES[case]
    g = torch.Generator().manual_seed(1)
    b, h, lq, lk, d, p = 2, 4, 5, 7, 8, 0.4
    kv = c.get("kv_heads", h)
    frozen = c.get("frozen", ())
    q = torch.randn(b, h, lq, d, generator=g, requires_grad="q" not in frozen)
    k = torch.randn(b, kv, lk, d, generator=g, requires_grad="k" not in frozen)
    v = torch.randn(b, kv, lk, d, generator=g, requires_grad=True)
    inputs = tuple(t for t in (q, k, v) if t.requires_grad)
    mask = None
    if c["mask"] == "bool":
        mask = torch.rand(b, 1, lq, lk, generator=g) > 0.3
        mask[0, 0, 1] = False  # a query that may see no key
    elif c["mask"] == "float":
        mask = torch.randn(b, 1, lq, lk, generator=g)
    causal = c.get("is_causal", False)
    kw = dict(scale=0.3, enable_gqa=kv != h)

    torch.manual_seed(5)
    keep = torch.rand(b, h, lq, lk) >= p
    additive = mask  # what F.scaled_dot_product_attention hands the kernel
    if mask is not None and mask.dtype == torch.bool:
        additive = torch.zeros(mask.shape).masked_fill_(~mask, float("-inf"))
    ref = torch.ops.aten._scaled_dot_product_attention_math(q, k, v, additive, p, causal, keep, **kw)[0]
    ref_grads = torch.autograd.grad(ref.square().sum(), inputs)
    torch.manual_seed(5)
    with FastDropout():
        got = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal, **kw)
    got_grads = torch.autograd.grad(got.square().sum(), inputs)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    for a, r in zip(got_grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)
    if c["mask"] == "bool":
        assert not got[0, :, 1].any()


def test_attention_in_other_dtypes_uses_the_kernel_with_the_same_mask():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 3, 4, 8, generator=g).bfloat16() for _ in range(3))
    mask = torch.rand(2, 1, 4, 4, generator=g) > 0.3
    torch.manual_seed(0)
    with FastDropout():
        got = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.2)
    torch.manual_seed(0)
    keep = (torch.rand(2, 3, 4, 4) >= 0.2).float()
    scores = (q.float() @ k.float().transpose(-1, -2)) / 8**0.5
    probs = scores.masked_fill(~mask, float("-inf")).softmax(-1).nan_to_num(0.0)
    ref = (probs * keep / 0.8) @ v.float()
    torch.testing.assert_close(got.float(), ref, rtol=0.05, atol=0.05)


def test_attention_without_dropout_is_untouched():
    q = torch.randn(2, 3, 4, 8)
    with FastDropout():
        got = F.scaled_dot_product_attention(q, q, q, dropout_p=0.0)
    assert torch.equal(got, F.scaled_dot_product_attention(q, q, q))


def _probes(lm, n=8):
    pad = lm.tokenizer.pad_token_id
    return probes(feats(lm, n, 1), partial(collate, pad_id=pad), pad)


@pytest.mark.parametrize("arch,site", [("bert", "bert.encoder.layer.3.attention.output"), ("gpt2", None), ("llama", None)])
def test_last_block_cut_is_found_only_where_the_head_reads_position_0(make_lm, arch, site):
    lm = make_lm(arch)
    prepare(lm, build_method("ln"))
    assert find_cut(lm.model, lm.norms.blocks, _probes(lm)) == site


def test_last_block_cut_changes_no_loss_and_no_gradient(make_lm):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    site = find_cut(lm.model, lm.norms.blocks, _probes(lm))
    batch = collate(feats(lm, 8, 3), lm.tokenizer.pad_token_id)
    lm.model.eval()  # no dropout: both runs compute the same function
    results = []
    for s in (None, site):
        with cutting(lm.model, s):
            loss = lm.model(**batch).loss
        results.append((loss.detach(), torch.autograd.grad(loss, tuning.parameters())))
    (ref, ref_g), (got, got_g) = results
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-7)
    for a, r in zip(got_g, ref_g):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_step_with_every_speedup_makes_the_same_updates(make_lm, arch):
    """Without randomness (eval mode) the fast step and the plain one train identically."""
    finals = []
    for on in (False, True):
        lm = make_lm(arch, seed=2)
        tuning = prepare(lm, build_method("ln"))
        config = TrainConfig(lr=0.05, packed=on, fast_dropout=on, cut_last_block=on, progress=False)
        step = Step(tuning, config, 10, probes=_probes(lm))
        assert (step.cut is not None) == (on and arch == "bert")
        lm.model.eval()
        losses = [step(collate(feats(lm, 8, i), lm.tokenizer.pad_token_id)).item() for i in range(3)]
        step.close()
        finals.append((losses, [t.param.detach().clone() for t in tuning.all]))
    (ref_l, ref_p), (got_l, got_p) = finals
    assert got_l == pytest.approx(ref_l, rel=1e-5)
    for a, r in zip(got_p, ref_p):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6)
