import pytest
import torch

from lntune.analyse.fisher import ln_names
from lntune.analyse.mask import MaskSpec, build_mask, count, normalised, save_mask
from lntune.errors import LntuneError
from lntune.method import build_method, prepare

SHAPES = {"a.weight": (6,), "a.bias": (6,), "b.weight": (5,)}  # N = 17


def fisher(seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(s, generator=g) * scale for n, s in SHAPES.items()}


FISHERS = {"sst2": fisher(0), "rte": fisher(1, 100.0), "stsb": fisher(2, 0.01)}


def flat(d):
    return torch.cat([d[n].reshape(-1) for n in sorted(d)])


def brute_top(scores, k):
    """The k highest by a plain Python sort on (-score, position)."""
    values = flat(scores).tolist()
    return set(sorted(range(len(values)), key=lambda i: (-values[i], i))[:k])


@pytest.mark.parametrize("kind", ["individual", "global", "cv", "random"])
@pytest.mark.parametrize("f", [0.1, 0.2, 0.5, 0.7, 1.0])
def test_exactly_round_f_n_elements(kind, f):
    masks = build_mask(MaskSpec(kind, f, "rte"), FISHERS)
    assert set(masks) == set(SHAPES) and all(m.dtype == torch.bool and m.shape == SHAPES[n] for n, m in masks.items())
    assert sum(int(m.sum()) for m in masks.values()) == round(f * 17) == count(17, f)


def test_individual_is_top_f_of_the_tasks_fisher():
    masks = build_mask(MaskSpec("individual", 0.3, "rte"), FISHERS)
    assert set(torch.nonzero(flat(masks)).flatten().tolist()) == brute_top(FISHERS["rte"], 5)


def test_global_is_top_f_of_the_normalised_sum():
    masks = build_mask(MaskSpec("global", 0.4, None), FISHERS)
    totals = {t: sum(float(v.sum()) for v in f.values()) for t, f in FISHERS.items()}
    summed = {n: sum(FISHERS[t][n].double() / totals[t] for t in FISHERS) for n in SHAPES}
    assert set(torch.nonzero(flat(masks)).flatten().tolist()) == brute_top(summed, 7)
    # without normalisation rte (x100) would decide alone; with it the mask differs from rte's own
    assert not torch.equal(flat(masks), flat(build_mask(MaskSpec("individual", 0.4, "rte"), FISHERS)))


def test_cv_mask_ignores_the_target_tasks_fisher():
    spec = MaskSpec("cv", 0.3, "sst2")
    before = build_mask(spec, FISHERS)
    changed = {**FISHERS, "sst2": fisher(99, 1e6)}
    after = build_mask(spec, changed)
    assert all(torch.equal(before[n], after[n]) for n in SHAPES)
    others = {t: FISHERS[t] for t in ("rte", "stsb")}
    assert all(torch.equal(before[n], build_mask(MaskSpec("global", 0.3), others)[n]) for n in SHAPES)
    # while the global mask does move with sst2's Fisher
    assert not torch.equal(
        flat(build_mask(MaskSpec("global", 0.3), FISHERS)), flat(build_mask(MaskSpec("global", 0.3), changed))
    )


def test_ties_break_deterministically_by_name_then_index():
    ties = {n: torch.ones(s) for n, s in SHAPES.items()}
    masks = build_mask(MaskSpec("individual", 0.5, "t"), {"t": ties})
    k = round(0.5 * 17)  # 8: Python rounds halves to even
    assert flat(masks).tolist() == [True] * k + [False] * (17 - k)  # a.bias, a.weight, b.weight in that order


def test_random_mask_is_seeded():
    a = build_mask(MaskSpec("random", 0.3, seed=1), FISHERS)
    assert all(torch.equal(a[n], build_mask(MaskSpec("random", 0.3, seed=1), FISHERS)[n]) for n in SHAPES)
    assert not torch.equal(flat(a), flat(build_mask(MaskSpec("random", 0.3, seed=2), FISHERS)))


def test_normalised_sums_to_one():
    assert float(flat(normalised(FISHERS["rte"])).sum()) == pytest.approx(1.0)


def test_bad_specs_say_what_to_do():
    with pytest.raises(LntuneError, match="choose one of"):
        MaskSpec("best", 0.2, "rte")
    with pytest.raises(LntuneError, match=r"\(0, 1\]"):
        MaskSpec("global", 0.0)
    with pytest.raises(LntuneError, match="pass --task"):
        MaskSpec("cv", 0.2)
    with pytest.raises(LntuneError, match="at least one other task"):
        build_mask(MaskSpec("cv", 0.2, "rte"), {"rte": FISHERS["rte"]})
    with pytest.raises(LntuneError, match="analyse fisher --task mnli"):
        build_mask(MaskSpec("individual", 0.2, "mnli"), FISHERS)
    with pytest.raises(LntuneError, match="selects none"):
        build_mask(MaskSpec("global", 0.01), FISHERS)


def test_mask_file_trains_with_ln_method(make_lm, tmp_path):
    lm = make_lm("bert")
    g = torch.Generator().manual_seed(0)
    params = dict(lm.model.named_parameters())
    fishers = {"sst2": {n: torch.rand(params[n].shape, generator=g) for n in ln_names(lm)}}
    n = sum(v.numel() for v in fishers["sst2"].values())
    spec = MaskSpec("individual", 0.2, "sst2")
    path = save_mask(tmp_path / spec.file_name, build_mask(spec, fishers), spec, ["sst2"])
    tuning = prepare(lm, build_method("ln", mask=str(path)))
    assert tuning.counts()["tuned"] == round(0.2 * n)
    # a training step moves only the masked-in elements
    before = {t.name: t.param.detach().clone() for t in tuning.tuned}
    out = lm.model(input_ids=torch.tensor([[101, 2204, 102]]), labels=torch.tensor([1]))
    out.loss.backward()
    torch.optim.SGD(tuning.parameters(), lr=1.0).step()
    for t in tuning.tuned:
        moved = t.param.detach() != before[t.name]
        assert not (moved & ~t.mask).any()
