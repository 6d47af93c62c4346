import random

import pytest
import torch

from lntune.data.encode import encode
from lntune.errors import TrainingError
from lntune.method import build_method, prepare
from lntune.train import TrainConfig, train


def toy(n, seed):
    rng = random.Random(seed)
    words = ["film", "story", "plot", "cast", "music"]
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        text = " ".join(rng.choices(words, k=4) + [("great" if label else "awful")] + rng.choices(words, k=2))
        rows.append({"text_a": text, "label": label})
    return rows


def feats(lm, n, seed):
    return encode(toy(n, seed), lm.tokenizer, "classification", 32)


def config(**kw):
    base = dict(lr=3e-2, epochs=3, batch_size=16, eval_batch_size=32, progress=False, seed=0)
    return TrainConfig(**{**base, **kw})


def test_ln_tuning_learns_a_toy_task(make_lm):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    result = train(tuning, feats(lm, 128, 1), feats(lm, 64, 2), config(epochs=4))
    losses = [h["loss"] for h in result.history]
    assert len(result.history) == 4 and result.steps == 4 * 8
    assert min(losses) < losses[0] < 0.75
    assert result.best["loss"] == min(losses)
    assert result.best["accuracy"] > 0.9


def test_best_state_is_restored(make_lm):
    from lntune.evaluate import evaluate
    from lntune.train.loop import loaders

    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    dev = feats(lm, 64, 2)
    result = train(tuning, feats(lm, 64, 1), dev, config(lr=0.3, epochs=4))
    _, dev_dl = loaders(tuning, dev, dev, config())
    got = evaluate(lm.model, dev_dl, "classification")
    assert got == {k: v for k, v in result.best.items() if k not in ("step", "epoch")}


def test_max_steps_and_eval_every(make_lm):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    result = train(tuning, feats(lm, 64, 1), feats(lm, 16, 2), config(max_steps=7, eval_every=3))
    assert result.steps == 7
    assert [h["step"] for h in result.history] == [3, 6, 7]


def test_early_stopping_on_validation_loss(make_lm):
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    # a learning rate this large makes the dev loss worse after the first evaluations
    result = train(tuning, feats(lm, 64, 1), feats(lm, 32, 2), config(lr=5.0, epochs=30, eval_every=2, patience=2))
    losses = [h["loss"] for h in result.history]
    assert result.steps < 30 * 4
    best = losses.index(min(losses))
    assert len(losses) == best + 3  # two evaluations without improvement, then stop


def test_nan_loss_stops_with_advice(make_lm):
    lm = make_lm("bert")
    with torch.no_grad():
        lm.model.bert.embeddings.word_embeddings.weight.fill_(float("nan"))
    tuning = prepare(lm, build_method("ln"))
    with pytest.raises(TrainingError, match="loss is nan at step 1.*lower --lr"):
        train(tuning, feats(lm, 16, 1), feats(lm, 16, 2), config())


def test_same_seed_same_result(make_lm):
    results = []
    for _ in range(2):
        lm = make_lm("bert")
        tuning = prepare(lm, build_method("ln"))
        results.append(train(tuning, feats(lm, 48, 1), feats(lm, 16, 2), config(epochs=2)).history)
    assert results[0] == results[1]


def test_bf16_autocast_keeps_tuned_tensors_float32(make_lm):
    lm = make_lm("bert")
    lm.model.to(torch.bfloat16)
    tuning = prepare(lm, build_method("ln"))
    before = [t.param.detach().clone() for t in tuning.tuned]
    result = train(tuning, feats(lm, 32, 1), feats(lm, 16, 2), config(epochs=1, mixed_precision="bf16"))
    assert result.steps == 2
    assert all(t.param.dtype == torch.float32 for t in tuning.all)
    assert any(not torch.equal(t.param, b) for t, b in zip(tuning.tuned, before))
