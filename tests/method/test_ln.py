import pytest
import torch

from conftest import H, L
from lntune.errors import MethodError
from lntune.method import build_method, prepare
from lntune.method.ln import parse_layers
from lntune.train.loop import optimizer
from lntune.train import TrainConfig


def names(lm, **options):
    return [t.name for t in prepare(lm, build_method("ln", **options)).tuned]


@pytest.mark.parametrize("spec,expected", [
    ("all", {0, 1, 2, 3}), ("top-half", {2, 3}), ("bottom-half", {0, 1}),
    ("0-1", {0, 1}), ("0,2-3", {0, 2, 3}), ("3", {3}),
])
def test_parse_layers(spec, expected):
    assert parse_layers(spec, 4) == expected


@pytest.mark.parametrize("spec", ["4", "2-1", "top", "1-"])
def test_parse_layers_rejects_bad_ranges(spec):
    with pytest.raises(MethodError, match="--ln-layers"):
        parse_layers(spec, 4)


def test_bert_default_selects_every_gain_and_bias(make_lm):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    assert tuning.counts()["tuned"] == (1 + 2 * L) * 2 * H  # embeddings LN + two per block, gain and bias
    assert tuning.counts()["head"] == H * 2 + 2
    trainable = {n for n, p in lm.model.named_parameters() if p.requires_grad}
    assert trainable == {t.name for t in tuning.tuned} | {"classifier.weight", "classifier.bias"}


def test_bert_bias_ffn_top_half(make_lm):
    got = names(make_lm("bert"), terms="bias", modules="ffn", layers="top-half")
    assert got == [f"bert.encoder.layer.{i}.output.LayerNorm.bias" for i in (2, 3)]


def test_gpt2_bias_ffn_top_half_includes_nothing_else(make_lm):
    got = names(make_lm("gpt2", "causal-lm"), terms="bias", modules="ffn", layers="top-half")
    assert got == ["transformer.h.2.ln_2.bias", "transformer.h.3.ln_2.bias"]


def test_gpt2_final_norm_follows_top_layer(make_lm):
    lm = make_lm("gpt2", "causal-lm")
    assert "transformer.ln_f.weight" in names(lm, terms="gain", layers="top-half")
    assert "transformer.ln_f.weight" not in names(lm, terms="gain", layers="bottom-half")


def test_bert_embeddings_norm_follows_bottom_layer(make_lm):
    lm = make_lm("bert")
    assert "bert.embeddings.LayerNorm.bias" in names(lm, terms="bias", layers="bottom-half")
    assert "bert.embeddings.LayerNorm.bias" not in names(lm, terms="bias", layers="top-half")


def test_llama_gain_ffn_top_half(make_lm):
    lm = make_lm("llama", "causal-lm")
    tuning = prepare(lm, build_method("ln", terms="gain", modules="ffn", layers="top-half"))
    assert [t.name for t in tuning.tuned] == [f"model.layers.{i}.post_attention_layernorm.weight" for i in (2, 3)]
    assert tuning.counts()["tuned"] == 2 * H and tuning.counts()["head"] == 0


def test_llama_bias_only_is_an_empty_selection(make_lm):
    with pytest.raises(MethodError, match="RMSNorm .* gains only"):
        names(make_lm("llama", "causal-lm"), terms="bias")


def test_bad_options_are_refused():
    with pytest.raises(MethodError, match="method ln: terms 'scale': choose gain, bias or both"):
        build_method("ln", terms="scale")
    with pytest.raises(MethodError, match="--ln-modules"):
        build_method("ln", modules="mha,attention")
    with pytest.raises(MethodError, match="unknown method"):
        build_method("lnn")


def test_tunes_in_place(make_lm):
    lm = make_lm("bert")
    before = {n: id(m) for n, m in lm.model.named_modules()}
    params = {n: id(p) for n, p in lm.model.named_parameters()}
    prepare(lm, build_method("ln"))
    assert {n: id(m) for n, m in lm.model.named_modules()} == before
    assert {n: id(p) for n, p in lm.model.named_parameters()} == params


def _steps(lm, tuning, n=3, lr=1e-2):
    opt = optimizer(tuning, TrainConfig(lr=lr, weight_decay=0.1))
    g = torch.Generator().manual_seed(0)
    for _ in range(n):
        ids = torch.randint(100, 2000, (4, 12), generator=g)
        out = lm.model(input_ids=ids, labels=torch.tensor([0, 1, 0, 1]))
        out.loss.backward()
        opt.step()
        opt.zero_grad()


def test_frozen_weights_stay_bit_identical(make_lm):
    lm = make_lm("bert")
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    tuning = prepare(lm, build_method("ln", terms="bias", modules="mha"))
    _steps(lm, tuning)
    trained = {t.name for t in tuning.all}
    for n, p in lm.model.named_parameters():
        if n in trained:
            assert not torch.equal(p, before[n]), n
        else:
            assert torch.equal(p, before[n]), n
            assert p.grad is None, n


def test_masked_out_elements_stay_bit_identical(make_lm, tmp_path):
    from safetensors.torch import save_file

    lm = make_lm("bert")
    chosen = [n for n, _ in lm.model.named_parameters() if "LayerNorm" in n]
    g = torch.Generator().manual_seed(1)
    masks = {n: torch.rand(H, generator=g) < 0.3 for n in chosen}
    masks[chosen[0]] = torch.zeros(H, dtype=torch.bool)  # an all-out mask drops the tensor
    save_file(masks, tmp_path / "mask.safetensors")
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    tuning = prepare(lm, build_method("ln", mask=str(tmp_path / "mask.safetensors")))
    assert chosen[0] not in [t.name for t in tuning.tuned]
    assert tuning.counts()["tuned"] == sum(int(m.sum()) for m in masks.values())
    _steps(lm, tuning)
    params = dict(lm.model.named_parameters())
    for n in chosen:
        assert torch.equal(params[n][~masks[n]], before[n][~masks[n]]), n
        assert (params[n][masks[n]] != before[n][masks[n]]).all(), n


def test_mask_file_errors(make_lm, tmp_path):
    from safetensors.torch import save_file

    lm = make_lm("bert")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(MethodError, match="bad.safetensors: cannot read"):
        prepare(lm, build_method("ln", mask=str(bad)))
    cases = {
        "has shape": {"bert.embeddings.LayerNorm.weight": torch.ones(H + 1, dtype=torch.bool)},
        "no mask for selected parameter": {"bert.embeddings.LayerNorm.weight": torch.ones(H, dtype=torch.bool)},
        "outside the selection": {"classifier.bias": torch.ones(2, dtype=torch.bool)},
        "not boolean": {"bert.embeddings.LayerNorm.weight": torch.ones(H)},
    }
    for i, (message, masks) in enumerate(cases.items()):
        save_file(masks, tmp_path / f"m{i}.safetensors")
        with pytest.raises(MethodError, match=message):
            prepare(lm, build_method("ln", mask=str(tmp_path / f"m{i}.safetensors")))


def test_norms_train_in_float32_inside_a_bf16_model(make_lm):
    lm = make_lm("bert")
    lm.model.to(torch.bfloat16)
    tuning = prepare(lm, build_method("ln"))
    assert all(t.param.dtype == torch.float32 for t in tuning.all)
    assert lm.model.bert.encoder.layer[0].attention.self.query.weight.dtype == torch.bfloat16
    gain = lm.model.bert.encoder.layer[0].output.LayerNorm.weight
    before = gain.detach().clone()
    _steps(lm, tuning, n=1, lr=1e-4)
    delta = (gain.detach() - before).abs()
    assert (delta > 0).all()
    # the same 1e-4 step on a bf16 gain of 1.0 rounds away (bf16 spacing there is 2^-7)
    assert torch.equal(before, torch.ones_like(before))
    assert torch.equal((before + delta).bfloat16(), before.bfloat16())
