"""Paired seeds: for one seed every method starts from the same head and sees the same batches."""
import pytest
import torch

import lntune.api as api
from lntune.train import TrainConfig
from lntune.train.loop import loaders


@pytest.fixture
def captured(monkeypatch):
    """Record the head tensors and the first training batches each train_task call starts from."""
    seen = []
    real = api.train

    def spy(tuning, train_feats, dev_feats, config, label_names=(), **kw):
        head = {t.name: t.param.detach().clone() for t in tuning.head}
        train_dl, _ = loaders(tuning, train_feats, dev_feats, config)
        batches = [b["input_ids"].clone() for b, _ in zip(train_dl, range(2))]
        seen.append((head, batches))
        return real(tuning, train_feats, dev_feats, config, label_names, **kw)

    monkeypatch.setattr(api, "train", spy)
    return seen


def _train(model, data_dir, method, seed, options=None, out=None):
    config = TrainConfig(epochs=1, batch_size=8, seed=seed, progress=False, lr=1e-3)
    return api.train_task("sst2", str(model), method, options or {}, config, out, data_dir, train_limit=32,
                          eval_limit=16)


@pytest.mark.usefixtures("one_thread")
def test_every_method_starts_from_the_same_head_and_batches(tiny_dir, data_dir, captured):
    model = tiny_dir("bert")
    for method in ("ln", "bitfit", "full", "head", "random", "prefix"):
        _train(model, data_dir, method, seed=3)
    _train(model, data_dir, "ln", seed=4)
    (head0, batches0), *rest, (head_other, batches_other) = captured
    for head, batches in rest:
        assert head.keys() == head0.keys() and all(torch.equal(head[k], head0[k]) for k in head0)
        assert all(torch.equal(a, b) for a, b in zip(batches, batches0))
    assert not torch.equal(head_other["classifier.weight"], head0["classifier.weight"])
    assert not all(torch.equal(a, b) for a, b in zip(batches_other, batches0))


@pytest.mark.usefixtures("one_thread")
def test_api_same_seed_same_skin_after_other_draws(tiny_dir, data_dir, tmp_path):
    """Draws from the global generators between two runs (another run, user code) change nothing."""
    from safetensors.torch import load_file

    model = tiny_dir("bert")
    _train(model, data_dir, "seq_adapter_ffn", 5, out=tmp_path / "a")
    torch.rand(1000)
    _train(model, data_dir, "seq_adapter_ffn", 5, out=tmp_path / "b")
    a, b = (load_file(tmp_path / d / "tuned.safetensors") for d in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
