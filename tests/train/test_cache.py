from functools import partial

import pytest
import torch

from lntune.data.encode import collate
from lntune.errors import TrainingError
from lntune.method import build_method, prepare
from lntune.train import TrainConfig, train
from lntune.train.cache import Store
from lntune.train.split import find_split, probes, serving, set_bottom_eval

from .test_loop import config, feats


def _upper_adapters(lm, method: str = "seq_adapter_ffn") -> list[str]:
    tuning = prepare(lm, build_method(method))
    top = lm.norms.num_layers // 2
    return [t.name for t in tuning.tuned if int(t.name.split(lm.norms.blocks + ".")[1].split(".")[0]) >= top]


def _tuning(make_lm, arch: str, case: str):
    lm = make_lm(arch)
    if case == "adapter":  # adapters on every block, only the upper half trains
        names = _upper_adapters(make_lm(arch))
        return prepare(lm, build_method("seq_adapter_ffn"), only=names)
    modules = "ffn" if case == "ffn" else "embeddings,mha,ffn,final"
    return prepare(lm, build_method("ln", layers="top-half", modules=modules))


def _run(make_lm, arch, case, **kw):
    tuning = _tuning(make_lm, arch, case)
    lm = tuning.lm
    cfg = config(epochs=3, frozen_bottom="eval", **kw)
    result = train(tuning, feats(lm, 40, 1), feats(lm, 24, 2), cfg)
    return result, {k: v.clone() for k, v in tuning.state().items()}


@pytest.mark.parametrize(
    "arch,case,site",
    [
        ("bert", "ln", "bert.encoder.layer.2.attention.output.LayerNorm"),  # the attention sub-block is skipped too
        ("bert", "ffn", "bert.encoder.layer.2.output.LayerNorm"),
        ("bert", "adapter", "bert.encoder.layer.2"),
        ("gpt2", "ln", "transformer.h.2"),
        ("gpt2", "adapter", "transformer.h.2"),
        ("llama", "ln", "model.layers.2"),
    ],
)
def test_cache_gives_the_same_losses_as_no_cache(make_lm, arch, case, site):
    ref, ref_state = _run(make_lm, arch, case, cache_bottom="off")
    got, got_state = _run(make_lm, arch, case, cache_bottom="on")
    assert ref.cache["site"] is None and got.cache["site"] == site
    steps = len(got.losses)
    assert got.cache["served"] == 2 * 3 + 2 * 1  # epochs 2-3 of 3 train batches, evaluations 2-3 of 1 dev batch
    assert got.cache["recorded"] == 3 + 1
    assert steps == 9 and got.losses == pytest.approx(ref.losses, rel=0, abs=1e-6)
    assert [h["loss"] for h in got.history] == pytest.approx([h["loss"] for h in ref.history], rel=0, abs=1e-6)
    for k in ref_state:
        torch.testing.assert_close(got_state[k], ref_state[k], rtol=0, atol=1e-6)


def test_disk_backed_cache_is_exact_and_cleaned_up(make_lm, tmp_path):
    ref, _ = _run(make_lm, "bert", "ln", cache_bottom="on")
    seen = []
    orig = Store.__init__

    def spy(self, *a, **kw):
        orig(self, *a, **kw)
        seen.append(self.path)

    Store.__init__ = spy
    try:
        got, _ = _run(make_lm, "bert", "ln", cache_bottom="on", cache_max_bytes=1, cache_dir=str(tmp_path))
    finally:
        Store.__init__ = orig
    assert len(seen) == 2 and all(p is not None and p.parent.parent == tmp_path for p in seen)
    assert got.cache["served"] == 8 and got.losses == ref.losses
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


def test_frozen_bottom_eval_changes_training_only_below_the_lowest_trainable_module(make_lm):
    # dropout below layer 2 is part of the "train" semantics, so the two modes differ
    eval_run, _ = _run(make_lm, "bert", "ln", cache_bottom="off")
    tuning = _tuning(make_lm, "bert", "ln")
    train_run = train(tuning, feats(tuning.lm, 40, 1), feats(tuning.lm, 24, 2), config(epochs=3))
    assert train_run.cache == {} and train_run.losses != pytest.approx(eval_run.losses, abs=1e-6)
    assert train_run.history[0]["loss"] != pytest.approx(eval_run.history[0]["loss"], abs=1e-6)


def test_cache_options_are_checked(make_lm):
    with pytest.raises(TrainingError, match="needs --frozen-bottom eval"):
        TrainConfig(cache_bottom="on")
    with pytest.raises(TrainingError, match="choose train or eval"):
        TrainConfig(frozen_bottom="dropout")
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))  # the embeddings LN trains: nothing worth caching
    with pytest.raises(TrainingError, match="no frozen bottom to cache"):
        train(tuning, feats(lm, 16, 1), feats(lm, 8, 2), config(frozen_bottom="eval", cache_bottom="on"))
    result = train(tuning, feats(lm, 16, 1), feats(lm, 8, 2), config(epochs=1, frozen_bottom="eval"))
    assert result.cache["site"] is None and result.cache["served"] == 0  # auto: no cache


def test_store_pads_rows_like_the_collate(tokenizer):
    feats = [{"input_ids": [1, 2, 3]}, {"input_ids": [[1, 2], [3, 4, 5, 6]]}, {"input_ids": [7]}]
    store = Store(feats, dim=2, dtype=torch.float32)
    states = torch.arange(3 * 4 * 2, dtype=torch.float32).view(3, 4, 2)  # example 1's two rows, then example 2
    store.put(torch.tensor([1, 2]), states)
    assert store.has(torch.tensor([1, 2])) and not store.has(torch.tensor([0, 1]))
    got = store.get(torch.tensor([2, 1]), width=5)
    assert got.shape == (3, 5, 2)
    torch.testing.assert_close(got[0, :1], states[2, :1])
    torch.testing.assert_close(got[1, :2], states[0, :2])
    torch.testing.assert_close(got[2, :4], states[1, :4])
    assert not got[0, 1:].any() and not got[1, 2:].any() and not got[2, 4:].any()


def _split(lm, n: int = 8):
    col = partial(collate, pad_id=lm.tokenizer.pad_token_id)
    return find_split(lm.model, lm.norms.blocks, probes(feats(lm, n, 1), col, lm.tokenizer.pad_token_id)), col


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("cached", [False, True])
@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_backward_never_reaches_below_the_lowest_trainable_module(make_lm, arch, cached):
    tuning = _tuning(make_lm, arch, "ln")
    lm, model = tuning.lm, tuning.lm.model
    split, col = _split(lm)
    mods = dict(model.named_modules())
    reached = set()
    below = {n for n in mods if any(n == b or n.startswith(b + ".") for b in split.bottom)}
    for name, mod in mods.items():  # every module of the bottom, and the modules that own what trains
        if name in below or any(p.requires_grad for p in mod.parameters(recurse=False)):
            mod.register_full_backward_hook(lambda m, gi, go, name=name: reached.add(name))
    batch = col(feats(lm, 8, 3))
    states = {}
    with torch.no_grad():  # the site's input, as the cache would hold it
        h = mods[split.site].register_forward_pre_hook(lambda m, a: states.setdefault("x", a[0]))
        model.eval()
        model(**batch)
        h.remove()
    model.train()
    set_bottom_eval(model, split)
    if cached:
        with serving(model, split, lambda r, w: states["x"]):
            model(**batch).loss.backward()
    else:
        model(**batch).loss.backward()
    assert reached and not reached & below
    assert lm.norms.blocks + ".0" in split.bottom and lm.norms.blocks + ".1" in split.bottom
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    assert all(p.grad is not None for t in tuning.all for p in [t.param])
