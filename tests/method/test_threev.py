import math

import pytest
import torch
import torch.nn.functional as F

from conftest import H, L
from lntune.errors import MethodError
from lntune.method import build_method, prepare
from lntune.train import TrainConfig

TEXTS = ["a fine film", "the plot drags on and on without any point at all", "dull", "warm, funny and wise"]
THREEV = {"threev.layer_logits", "threev.query", "threev.scale"}


def batch(lm, texts=TEXTS, labels=None):
    b = dict(lm.tokenizer(texts, padding=True, return_tensors="pt"))
    if labels is not None:
        b["labels"] = labels
    return b


def prepared(make_lm, arch="bert", head="classification", **options):
    lm = make_lm(arch, head)
    return lm, prepare(lm, build_method("3v", **options))


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_count_is_layers_plus_one_plus_two_hidden(make_lm, arch):
    lm, tuning = prepared(make_lm, arch)
    c = tuning.counts()
    assert c["tuned"] == (L + 1) + 2 * H  # BERT-base: 13 + 2 * 768 = 1,549
    assert c["head"] == sum(p.numel() for n, p in lm.model.named_parameters() if n in lm.head_names)
    assert {t.name for t in tuning.tuned} == THREEV
    trainable = {n for n, p in lm.model.named_parameters() if p.requires_grad}
    assert trainable == THREEV | set(lm.head_names)


def test_bert_base_count_matches_the_paper():
    from transformers import BertConfig

    from lntune.method.threev import ThreeVPooler

    cfg = BertConfig()  # bert-base: 12 layers, hidden 768
    pooler = ThreeVPooler(cfg.num_hidden_layers + 1, cfg.hidden_size, "classifier")
    assert sum(p.numel() for p in pooler.parameters()) == 1549


def test_pretrained_weights_stay_bit_identical(make_lm):
    lm, tuning = prepared(make_lm)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    opt = torch.optim.AdamW(tuning.parameters(), lr=1e-2)
    lm.model.train()
    for _ in range(3):
        lm.model(**batch(lm, labels=torch.tensor([1, 0, 0, 1]))).loss.backward()
        opt.step()
        opt.zero_grad()
    changed = {n for n, p in lm.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == THREEV | set(lm.head_names)


def _classifier_input(lm, b) -> torch.Tensor:
    seen = []
    handle = lm.model.classifier.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    lm.model(**b)
    handle.remove()
    return seen[0]


@torch.no_grad()
def test_initial_pooled_vector_is_masked_mean_of_layer_mean(make_lm):
    lm, _ = prepared(make_lm)
    lm.model.eval()
    b = batch(lm)
    got = _classifier_input(lm, b)
    states = lm.model.base_model(**b, output_hidden_states=True).hidden_states
    assert len(states) == L + 1
    layer_mean = torch.stack(states).mean(0)  # (B, T, H)
    m = b["attention_mask"].unsqueeze(-1).float()
    expected = (layer_mean * m).sum(1) / m.sum(1)
    assert b["attention_mask"].eq(0).any()  # the batch really has padding to ignore
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
@torch.no_grad()
def test_padding_does_not_change_logits(make_lm, arch):
    lm, _ = prepared(make_lm, arch, query_init=0.5)  # a non-zero query: real attention pooling
    lm.model.eval()
    short, long_ = TEXTS[0], TEXTS[1]
    alone = lm.model(**batch(lm, [short])).logits
    padded = batch(lm, [short, long_])
    assert padded["attention_mask"][0].eq(0).any()
    assert torch.allclose(lm.model(**padded).logits[:1], alone, atol=1e-5, rtol=1e-5)


def _train(lm, tuning, b, steps=15, lr=3e-2) -> list[float]:
    opt = torch.optim.AdamW(tuning.parameters(), lr=lr)
    lm.model.eval()  # no dropout: the fixed batch's loss must fall step by step
    losses = []
    for _ in range(steps):
        loss = lm.model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def test_training_lowers_classification_loss(make_lm):
    lm, tuning = prepared(make_lm)
    b = batch(lm, labels=torch.tensor([1, 0, 0, 1]))
    out = lm.model(**b)
    assert out.logits.shape == (4, 2)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, b["labels"]))  # the model's own problem type
    losses = _train(lm, tuning, b)
    assert losses[-1] < 0.5 * losses[0]


def test_regression_head_uses_mse_and_trains(make_lm):
    lm, tuning = prepared(make_lm, head="regression")
    b = batch(lm, labels=torch.tensor([4.5, 1.0, 0.5, 3.5]))
    out = lm.model(**b)
    assert out.logits.shape == (4, 1)
    assert torch.allclose(out.loss, F.mse_loss(out.logits.squeeze(-1), b["labels"]))
    losses = _train(lm, tuning, b, lr=1e-1)
    assert losses[-1] < 0.5 * losses[0]


def test_causal_lm_head_is_refused(make_lm):
    lm = make_lm("gpt2", "causal-lm")
    with pytest.raises(MethodError, match="3V is for sequence classification only"):
        prepare(lm, build_method("3v"))


def test_non_sequence_classification_model_is_refused(tokenizer):
    import transformers as tf

    from conftest import tiny_config
    from lntune.model import wrap

    model = tf.BertForTokenClassification(tiny_config("bert"))
    lm = wrap(model, tokenizer, "tiny-bert-tokens", "classification", ("classifier.bias", "classifier.weight"))
    with pytest.raises(MethodError, match="BertForTokenClassification is not a \\*ForSequenceClassification"):
        prepare(lm, build_method("3v"))


def test_applying_twice_is_refused(make_lm):
    lm, _ = prepared(make_lm)
    with pytest.raises(MethodError, match="already applied"):
        build_method("3v").apply(lm)


def test_init_options(make_lm):
    with pytest.raises(MethodError, match="layer_init"):
        build_method("3v", layer_init="first")
    lm, _ = prepared(make_lm, layer_init="last", query_init=0.1, scale_init=2.0, seed=3)
    pooler = lm.model.threev
    assert math.isclose(pooler.layer_logits.softmax(0)[-1].item(), 0.99, rel_tol=1e-6)
    assert torch.all(pooler.scale == 2.0)
    again, _ = prepared(make_lm, layer_init="last", query_init=0.1, scale_init=2.0, seed=3)
    assert pooler.query.abs().sum() > 0 and torch.equal(pooler.query, again.model.threev.query)


def test_composes_with_ln(make_lm):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln+3v"))
    assert tuning.counts()["tuned"] == (1 + 2 * L) * 2 * H + (L + 1) + 2 * H


FAST = TrainConfig(lr=3e-2, epochs=1, batch_size=16, eval_batch_size=32, progress=False)


def test_skin_round_trip(tiny_dir, data_dir, tmp_path):
    from safetensors.torch import load_file

    from lntune.api import evaluate_skin, train_task
    from lntune.skin import load_skin

    base = tiny_dir("bert")
    rec = train_task("sst2", str(base), "3v", {}, FAST, tmp_path / "skin", data_dir, 64, 64)
    assert rec.counts.tuned == (L + 1) + 2 * H
    saved = load_file(str(tmp_path / "skin" / "tuned.safetensors"))
    assert set(saved) == THREEV | {"classifier.bias", "classifier.weight"}
    tuning, meta = load_skin(tmp_path / "skin")
    assert meta.method == "3v"
    loaded = tuning.state()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    got = evaluate_skin(tmp_path / "skin", data_dir)
    assert got["loss"] == rec.metrics["loss"] and got["accuracy"] == rec.metrics["accuracy"]
