import pytest
import torch

from lntune.method import build_method, prepare
from lntune.train import TrainConfig, train
from lntune.train.loop import optimizer
from lntune.train.packed import PackedAdamW

from .test_loop import config, feats


def _fake_grads(tuning, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for t in tuning.all:
        grad = torch.randn(t.param.shape, generator=g)
        t.param.grad = grad if t.param.grad is None else t.param.grad.copy_(grad)


def _run(tuning, opt, steps: int, clip) -> list[torch.Tensor]:
    for i in range(steps):
        _fake_grads(tuning, i)
        for t in tuning.all:  # what the mask hook does to real gradients
            if t.mask is not None:
                t.param.grad.masked_fill_(~t.mask, 0)
        clip(tuning)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return [t.param.detach().clone() for t in tuning.all]


def test_packed_adamw_matches_per_tensor_adamw_with_decay_and_clipping(make_lm):
    results = []
    for packed in (False, True):
        lm = make_lm("bert", seed=3)
        tuning = prepare(lm, build_method("ln"))
        cfg = TrainConfig(lr=0.05, weight_decay=0.1)
        if packed:
            opt = PackedAdamW(tuning, cfg.lr, cfg.weight_decay)

            def clip(_, opt=opt):
                opt.clip_grad_norm_(1.0)
        else:
            opt = optimizer(tuning, cfg)

            def clip(tuning):
                torch.nn.utils.clip_grad_norm_(tuning.parameters(), 1.0)

        results.append(_run(tuning, opt, 5, clip))
    before = [t.param for t in prepare(make_lm("bert", seed=3), build_method("ln")).all]
    for ref, got, start in zip(*results, before):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
        assert not torch.equal(got, start)  # every tensor moved


def test_packed_buffer_holds_only_tuned_elements_and_masked_out_stay_bit_identical(make_lm):
    lm = make_lm("bert")
    masks = {}
    g = torch.Generator().manual_seed(0)
    for site in lm.norms:
        for attr in ("weight", "bias"):
            p = getattr(site.module, attr)
            masks[f"{site.name}.{attr}"] = torch.rand(p.shape, generator=g) < 0.3
    tuning = prepare(lm, build_method("ln"), masks=masks)
    start = {t.name: t.param.detach().clone() for t in tuning.all}
    opt = PackedAdamW(tuning, lr=0.1)
    assert sum(f.numel() for f in opt.flat) == tuning.counts()["tuned"] + tuning.counts()["head"]
    _run(tuning, opt, 3, lambda _: opt.clip_grad_norm_(1.0))
    for t in tuning.tuned:
        assert torch.equal(t.param[~t.mask], start[t.name][~t.mask])
        assert not torch.equal(t.param[t.mask], start[t.name][t.mask])


def test_release_gives_tensors_their_own_storage(make_lm):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    opt = PackedAdamW(tuning, lr=0.1)
    p = tuning.tuned[0].param
    assert p.data_ptr() == opt.flat[0].data_ptr() and p.grad is not None  # a view: no copies per step
    opt.release()
    assert p.grad is None and p.data_ptr() != opt.flat[0].data_ptr()


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_training_with_packed_equals_per_tensor_adamw(make_lm, arch):
    histories = []
    for packed in (False, True):
        lm = make_lm(arch)
        tuning = prepare(lm, build_method("ln"))
        r = train(tuning, feats(lm, 48, 1), feats(lm, 16, 2), config(epochs=2, packed=packed, weight_decay=0.01))
        histories.append((r.losses, [h["loss"] for h in r.history]))
    (ref_steps, ref_dev), (got_steps, got_dev) = histories
    assert len(got_steps) == 6
    assert got_steps == pytest.approx(ref_steps, rel=1e-5, abs=1e-6)
    assert got_dev == pytest.approx(ref_dev, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("packed", [False, True])
def test_head_lr_moves_the_head_at_its_own_rate(make_lm, packed):
    """Against torch AdamW with the two groups written out by hand, decay on the head matrix included."""
    lm = make_lm("bert", seed=3)
    tuning = prepare(lm, build_method("ln"))
    cfg = TrainConfig(lr=0.05, head_lr=0.004, weight_decay=0.1)
    opt = PackedAdamW(tuning, cfg.lr, cfg.weight_decay, head_lr=cfg.head_lr) if packed else optimizer(tuning, cfg)

    ref_lm = make_lm("bert", seed=3)
    ref_tuning = prepare(ref_lm, build_method("ln"))
    head = [t.param for t in ref_tuning.head]
    ref = torch.optim.AdamW([
        {"params": [t.param for t in ref_tuning.tuned], "lr": 0.05, "weight_decay": 0.0},
        {"params": [p for p in head if p.dim() < 2], "lr": 0.004, "weight_decay": 0.0},
        {"params": [p for p in head if p.dim() >= 2], "lr": 0.004, "weight_decay": 0.1},
    ])

    def clip(tuning, opt=opt):
        if packed:
            opt.clip_grad_norm_(1.0)
        else:
            torch.nn.utils.clip_grad_norm_(tuning.parameters(), 1.0)

    got = _run(tuning, opt, 4, clip)
    want = _run(ref_tuning, ref, 4, lambda t: torch.nn.utils.clip_grad_norm_(t.parameters(), 1.0))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
