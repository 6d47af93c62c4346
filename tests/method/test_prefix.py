"""Prefix-tuning on tiny BERT, GPT-2 and Llama (GQA): what trains, counts, masks, KV-cache decoding, skins.

Expected values come from references: the same model without cache, without padding, with the
other attention implementation, or with the prefix fed the old way, as a pre-filled cache.
"""
import json

import pytest
import torch

from conftest import H, L, tiny_model
from lntune.errors import MethodError
from lntune.method import build_method, prepare
from lntune.method.prefix import ENCODER, _prefixes
from lntune.model import wrap
from lntune.train import TrainConfig
from lntune.train.loop import optimizer

KV = {"bert": H, "gpt2": H, "llama": H // 2}  # key width per layer: tiny Llama has one kv head of H / 2
CAUSAL = [("gpt2", "causal-lm"), ("llama", "causal-lm")]
CLASSIFIERS = [("bert", "classification"), ("gpt2", "classification"), ("llama", "classification")]


def prefixed(make_lm, arch, head, impl="sdpa", **options):
    """An eval-mode tiny model with a random, clearly non-zero prefix."""
    lm = make_lm(arch, head)
    lm.model.eval()
    lm.model.set_attn_implementation(impl)
    tuning = prepare(lm, build_method("prefix", **{"length": 3, "init_std": 1.0, **options}))
    return lm, tuning


def ids_and_mask(seed=0, left=True):
    """Two rows of 7 tokens; row 1 has 3 pads on the left (decoders) or the right (encoders)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 3000, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    pads = slice(0, 3) if left else slice(4, 7)
    ids[1, pads], mask[1, pads] = 0, 0
    return ids, mask


def steps(lm, tuning, n=3, lr=1e-2):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 2000, (4, 12), generator=g)
    labels = ids if lm.head == "causal-lm" else torch.tensor([0, 1, 0, 1])
    opt = optimizer(tuning, TrainConfig(lr=lr, weight_decay=0.1))
    losses = []
    for _ in range(n):
        loss = lm.model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("arch,head", CLASSIFIERS + [("llama", "causal-lm")])
def test_trains_only_its_own_tensors_and_the_head(make_lm, arch, head):
    lm = make_lm(arch, head)
    base = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    tuning = prepare(lm, build_method("prefix", length=4))
    added = {n for n, _ in lm.model.named_parameters()} - set(base)
    assert {t.name for t in tuning.tuned} == added and all(".prefix." in n for n in added)
    assert {t.name for t in tuning.head} == set(lm.head_names)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    steps(lm, tuning)
    trained = {t.name for t in tuning.all}
    for n, p in lm.model.named_parameters():
        if n in trained:
            assert not torch.equal(p, before[n]), n
        else:
            assert torch.equal(p, base[n]), n
            assert p.grad is None, n


@pytest.mark.parametrize("arch,head", [("bert", "classification"), ("gpt2", "causal-lm"), ("llama", "causal-lm")])
@pytest.mark.parametrize("length", [1, 5])
def test_count_is_2_layers_l_kv_width_with_the_same_names_every_time(make_lm, arch, head, length):
    first = prepare(make_lm(arch, head), build_method("prefix", length=length))
    again = prepare(make_lm(arch, head), build_method("prefix", length=length))
    assert first.counts()["tuned"] == 2 * L * length * KV[arch]
    assert [t.name for t in first.tuned] == [t.name for t in again.tuned]
    assert all(t.param.shape == (length, KV[arch]) for t in first.tuned)


def test_llama_prefix_has_the_key_value_head_shape(make_lm):
    lm, _ = prefixed(make_lm, "llama", "causal-lm")
    attn = lm.model.model.layers[0].self_attn
    assert attn.config.num_key_value_heads == 1 < attn.config.num_attention_heads
    k, v = attn.prefix(2, torch.float32)
    assert k.shape == v.shape == (2, 1, 3, attn.head_dim)


@pytest.mark.parametrize("arch,head", CAUSAL)
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_matches_the_prefix_fed_as_a_prefilled_cache(make_lm, arch, head, impl):
    from transformers import DynamicCache

    lm, _ = prefixed(make_lm, arch, head, impl)
    ref = tiny_model(arch, head).eval()  # the same weights, no method applied
    ref.set_attn_implementation(impl)
    ids, mask = ids_and_mask()
    cache = DynamicCache(config=ref.config)
    for i, (_, prefix) in enumerate(_prefixes(lm.model)):
        cache.update(*prefix(2, torch.float32), i)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # real tokens start at 0, as in generate
    with torch.no_grad():
        got = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        want = ref(input_ids=ids, attention_mask=torch.cat([torch.ones(2, 3, dtype=torch.long), mask], 1),
                   position_ids=positions, past_key_values=cache).logits
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch,head", CAUSAL)
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_greedy_generation_is_the_same_with_and_without_the_kv_cache(make_lm, arch, head, impl):
    lm, _ = prefixed(make_lm, arch, head, impl)
    ids, mask = ids_and_mask(left=True)
    runs = [
        lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, use_cache=cache,
                          pad_token_id=0, return_dict_in_generate=True, output_logits=True)
        for cache in (True, False)
    ]
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    for cached, full in zip(runs[0].logits, runs[1].logits):
        torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
    # the left-padded row decodes as it does alone, unpadded
    alone = lm.model.generate(input_ids=ids[1:, 3:], max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(runs[0].sequences[1, 7:], alone[0, 4:])


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_encoder_padding_changes_nothing(make_lm, impl):
    lm, _ = prefixed(make_lm, "bert", "classification", impl)
    ids, mask = ids_and_mask(left=False)
    with torch.no_grad():
        padded = lm.model(input_ids=ids, attention_mask=mask).logits
        alone = lm.model(input_ids=ids[1:, :4]).logits
        first = lm.model(input_ids=ids[:1]).logits
    torch.testing.assert_close(padded[1:], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(padded[:1], first, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch,head", CLASSIFIERS + CAUSAL)
def test_sdpa_and_eager_agree(make_lm, arch, head):
    ids, mask = ids_and_mask(left=arch != "bert")
    out = {}
    for impl in ("sdpa", "eager"):
        lm, _ = prefixed(make_lm, arch, head, impl)
        with torch.no_grad():
            out[impl] = [lm.model(input_ids=ids, attention_mask=mask).logits, lm.model(input_ids=ids).logits]
    for s, e in zip(out["sdpa"], out["eager"]):
        torch.testing.assert_close(s, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch,head", [("bert", "classification"), ("gpt2", "causal-lm"), ("llama", "causal-lm")])
@pytest.mark.parametrize("reparam", [False, True])
def test_the_prefix_changes_outputs_and_training_lowers_the_loss(make_lm, arch, head, reparam):
    ids, _ = ids_and_mask()
    with torch.no_grad():
        base = tiny_model(arch, head).eval()(input_ids=ids).logits
    lm, tuning = prefixed(make_lm, arch, head, init_std=0.02, reparam=reparam, reparam_hidden=16)
    with torch.no_grad():
        assert not torch.allclose(lm.model(input_ids=ids).logits, base, atol=1e-3)
    losses = steps(lm, tuning, n=8, lr=3e-2)
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("arch,head", [("bert", "classification"), ("llama", "causal-lm")])
def test_finalize_folds_the_mlp_into_plain_vectors(make_lm, arch, head):
    lm, tuning = prefixed(make_lm, arch, head, reparam=True, reparam_hidden=16)
    assert {t.name.split(".")[0] for t in tuning.tuned} == {ENCODER}
    trainable = {n for n, p in lm.model.named_parameters() if p.requires_grad}
    assert trainable == {t.name for t in tuning.all}  # the plain vectors wait for finalize
    steps(lm, tuning, n=2)
    ids, mask = ids_and_mask(left=arch != "bert")
    with torch.no_grad():
        before = lm.model(input_ids=ids, attention_mask=mask).logits
    tuning.method.finalize(tuning)
    assert not hasattr(lm.model, ENCODER) and not any(ENCODER in n for n, _ in lm.model.named_parameters())
    assert [t.name for t in tuning.tuned] == [n for n, _ in lm.model.named_parameters() if ".prefix." in n]
    assert tuning.counts()["tuned"] == 2 * L * 3 * KV[arch]
    assert tuning.method.skin_options()["reparam"] is False and tuning.method.options()["reparam"] is True
    with torch.no_grad():
        assert torch.equal(lm.model(input_ids=ids, attention_mask=mask).logits, before)
    tuning.method.finalize(tuning)  # a second save folds nothing more
    assert tuning.counts()["tuned"] == 2 * L * 3 * KV[arch]


def test_composes_with_ln_tuning(make_lm):
    lm = make_lm("llama", "causal-lm")
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    tuning = prepare(lm, build_method("prefix+ln", prefix={"length": 2, "reparam": True, "reparam_hidden": 8}))
    steps(lm, tuning, n=2)
    tuning.method.finalize(tuning)
    names = [t.name for t in tuning.tuned]
    assert any(n.endswith("prefix.key") for n in names) and any("norm" in n for n in names)
    assert not any(n.startswith(ENCODER) for n in names)
    for n, p in lm.model.named_parameters():
        if n not in names:
            assert torch.equal(p, before[n]), n


def test_refuses_what_it_cannot_do(make_lm):
    with pytest.raises(MethodError, match="method prefix: length 0: must be an integer >= 1"):
        build_method("prefix", length=0)
    lm = make_lm("gpt2", "causal-lm")
    lm.model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(MethodError, match="GPT2LMHeadModel uses 'flash_attention_2'.*attn_implementation='sdpa'"):
        prepare(lm, build_method("prefix"))
    lm, _ = prefixed(make_lm, "llama", "causal-lm")
    with pytest.raises(MethodError, match="already has a prefix"):
        prepare(lm, build_method("prefix"))
    lm.model.config._attn_implementation = "flash_attention_2"  # switched after apply: refused at run time
    with pytest.raises(MethodError, match="LlamaAttention is set to 'flash_attention_2'"):
        lm.model(input_ids=torch.tensor([[5, 6]]))


def test_names_the_unsupported_model(tokenizer):
    import transformers as tf

    torch.manual_seed(0)
    config = tf.DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2, hidden_dim=64,
                                 max_position_embeddings=32)
    norms = {r"sa_layer_norm$": "mha", r"output_layer_norm$": "ffn"}
    lm = wrap(tf.DistilBertForSequenceClassification(config), tokenizer, "tiny-distilbert", "classification", (), norms)
    with pytest.raises(MethodError, match="does not support DistilBertForSequenceClassification"):
        prepare(lm, build_method("prefix"))


# --- skins: train_task -> save -> load_skin / evaluate_skin -----------------------------------------

FAST = TrainConfig(lr=3e-2, epochs=1, batch_size=16, eval_batch_size=32, progress=False)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_skin_round_trip(tiny_dir, data_dir, tmp_path, arch):
    from safetensors.torch import load_file

    from lntune.api import evaluate_skin, train_task
    from lntune.skin import load_skin

    rec = train_task("sst2", str(tiny_dir(arch)), "prefix", {"length": 4}, FAST, tmp_path / "skin", data_dir, 64, 64)
    saved = load_file(str(tmp_path / "skin" / "tuned.safetensors"))
    assert rec.counts.tuned == 2 * L * 4 * KV[arch]
    tuning, _ = load_skin(tmp_path / "skin")
    loaded = tuning.state()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    got = evaluate_skin(tmp_path / "skin", data_dir)
    assert got["loss"] == rec.metrics["loss"] and got["accuracy"] == rec.metrics["accuracy"]


def test_reparam_skin_stores_plain_vectors_and_reloads_to_the_same_outputs(tiny_dir, data_dir, tmp_path):
    from safetensors.torch import load_file

    from lntune.api import evaluate_skin, train_task
    from lntune.skin import load_skin

    options = {"length": 4, "reparam": True, "reparam_hidden": 16}
    rec = train_task("sst2", str(tiny_dir("bert")), "prefix", options, FAST, tmp_path / "skin", data_dir, 64, 64)
    meta = json.loads((tmp_path / "skin" / "skin.json").read_text())
    assert meta["options"]["reparam"] is True and meta["rebuild"]["reparam"] is False
    tensors = load_file(str(tmp_path / "skin" / "tuned.safetensors"))
    assert not any(ENCODER in k for k in tensors)
    assert sum(v.numel() for k, v in tensors.items() if ".prefix." in k) == 2 * L * 4 * H == rec.counts.tuned
    tuning, _ = load_skin(tmp_path / "skin")
    assert not hasattr(tuning.lm.model, ENCODER)
    # the metrics recorded in training came from the MLP's prefix; the folded vectors give the same
    got = evaluate_skin(tmp_path / "skin", data_dir)
    assert got["loss"] == rec.metrics["loss"] and got["accuracy"] == rec.metrics["accuracy"]
