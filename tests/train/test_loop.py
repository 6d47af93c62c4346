import random

import pytest
import torch

from lntune.errors import TrainingError
from lntune.heads import encode
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


def test_select_score_keeps_the_best_score_and_min_delta_sets_what_counts(make_lm):
    from lntune.train.loop import Score

    lm = make_lm("bert")
    train_f, dev_f = feats(lm, 64, 1), feats(lm, 64, 2)
    result = train(prepare(lm, build_method("ln")), train_f, dev_f, config(epochs=4, select="score"),
                   score=Score("accuracy"))
    accs = [h["accuracy"] for h in result.history]
    assert result.best["accuracy"] == max(accs) and result.best["step"] == result.history[accs.index(max(accs))]["step"]
    # nothing beats the first evaluation by more than 2 (a share cannot): patience 1 stops at the second
    lm = make_lm("bert")
    result = train(prepare(lm, build_method("ln")), train_f, dev_f,
                   config(epochs=4, select="score", min_delta=2.0, patience=1), score=Score("accuracy"))
    assert len(result.history) == 2 and result.best["step"] == result.history[0]["step"]
    lm = make_lm("bert")
    lower = train(prepare(lm, build_method("ln")), train_f, dev_f, config(epochs=3, select="score"),
                  score=Score("loss", greater_is_better=False))
    assert lower.best["loss"] == min(h["loss"] for h in lower.history)


def test_select_score_without_the_metric_is_one_clear_error(make_lm):
    from lntune.train.loop import Score

    lm = make_lm("bert")
    with pytest.raises(TrainingError, match="no pearson"):
        train(prepare(lm, build_method("ln")), feats(lm, 32, 1), feats(lm, 32, 2), config(epochs=1, select="score"),
              score=Score("pearson"))
    with pytest.raises(TrainingError, match="--select score"):
        train(prepare(lm, build_method("ln")), feats(lm, 32, 1), feats(lm, 32, 2), config(epochs=1, select="score"))
    with pytest.raises(TrainingError, match="--select"):
        config(select="accuracy")


def test_a_curve_scores_other_examples_after_the_listed_epochs(make_lm):
    from lntune.evaluate import evaluate
    from lntune.train.loop import Curve, eval_loader

    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    held = feats(lm, 48, 3)
    result = train(tuning, feats(lm, 64, 1), feats(lm, 64, 2), config(epochs=3), curve=Curve(held, frozenset({1, 3})))
    assert [c["epoch"] for c in result.curve] == [1, 3] and result.curve[1]["step"] == result.steps
    # every epoch listed: the kept state (restored after training) is one of them, and scores as its point did
    lm = make_lm("bert")
    tuning = prepare(lm, build_method("ln"))
    result = train(tuning, feats(lm, 64, 1), feats(lm, 64, 2), config(epochs=3),
                   curve=Curve(held, frozenset({1, 2, 3})))
    kept = result.curve[result.best["epoch"] - 1]
    assert kept["epoch"] == result.best["epoch"]
    got = evaluate(lm.model, eval_loader(held, 32, lm.tokenizer.pad_token_id), "classification")
    assert got["loss"] == pytest.approx(kept["loss"]) and got["accuracy"] == kept["accuracy"]
