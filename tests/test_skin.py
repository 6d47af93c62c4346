import json

import pytest
import torch

from lntune.api import evaluate_skin, train_task
from lntune.errors import SkinError
from lntune.skin import load_skin
from lntune.train import TrainConfig

FAST = TrainConfig(lr=3e-2, epochs=1, batch_size=16, eval_batch_size=32, progress=False)


@pytest.fixture
def trained(tiny_dir, data_dir, tmp_path):
    """train a tiny BERT on 64 SST-2 rows; return (base path, skin dir, record)."""
    base = tiny_dir("bert")
    rec = train_task("sst2", str(base), "ln", {}, FAST, tmp_path / "skin", data_dir, 64, 64)
    return base, tmp_path / "skin", rec


def test_skin_holds_only_what_was_tuned(trained):
    _, skin, rec = trained
    meta = json.loads((skin / "skin.json").read_text())
    assert meta["counts"]["tuned"] == (1 + 2 * 4) * 2 * 32
    assert meta["tuned"][0] == "bert.embeddings.LayerNorm.weight"
    assert meta["head"] == ["classifier.bias", "classifier.weight"]
    assert meta["task"]["labels"] == ["negative", "positive"]
    from safetensors.torch import load_file

    tensors = load_file(str(skin / "tuned.safetensors"))
    assert set(tensors) == set(meta["tuned"]) | set(meta["head"])


def test_skin_round_trips_bit_exactly(trained):
    base, skin, rec = trained
    tuning, meta = load_skin(skin)
    loaded = tuning.state()
    from safetensors.torch import load_file

    saved = load_file(str(skin / "tuned.safetensors"))
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    # and everything that was not tuned is the base model, bit for bit
    again, _ = load_skin(skin)
    assert all(torch.equal(a, b) for a, b in zip(tuning.lm.model.state_dict().values(), again.lm.model.state_dict().values()))


def test_eval_reproduces_saved_metrics_exactly(trained, data_dir):
    _, skin, rec = trained
    got = evaluate_skin(skin, data_dir)
    assert got["loss"] == rec.metrics["loss"] and got["accuracy"] == rec.metrics["accuracy"]


def test_skin_for_another_base_is_refused(trained, tiny_dir):
    _, skin, _ = trained
    other = tiny_dir("bert", seed=1)
    with pytest.raises(SkinError, match="was trained on .* but the model given"):
        load_skin(skin, model=str(other))


def test_corrupt_skins_are_refused(trained):
    _, skin, _ = trained
    data = bytearray((skin / "tuned.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (skin / "tuned.safetensors").write_bytes(bytes(data))
    with pytest.raises(SkinError, match="checksum differs"):
        load_skin(skin)
    (skin / "tuned.safetensors").unlink()
    with pytest.raises(SkinError, match="tuned.safetensors: missing"):
        load_skin(skin)
    (skin / "skin.json").write_text("{not json")
    with pytest.raises(SkinError, match="not valid JSON"):
        load_skin(skin)
    (skin / "skin.json").unlink()
    with pytest.raises(SkinError, match="no skin.json"):
        load_skin(skin)


def test_masked_skin_stores_only_masked_elements(tiny_dir, data_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    from lntune.model import load_model

    base = tiny_dir("bert")
    lm = load_model(str(base))
    g = torch.Generator().manual_seed(0)
    masks = {s.name + ".bias": torch.rand(32, generator=g) < 0.25 for s in lm.norms}
    save_file(masks, tmp_path / "mask.safetensors")
    opts = {"terms": "bias", "mask": str(tmp_path / "mask.safetensors")}
    rec = train_task("sst2", str(base), "ln", opts, FAST, tmp_path / "skin", data_dir, 64, 64)
    tensors = load_file(str(tmp_path / "skin" / "tuned.safetensors"))
    n = sum(int(m.sum()) for m in masks.values())
    assert rec.counts.tuned == n
    assert sum(v.numel() for k, v in tensors.items() if k.endswith(".bias") and not k.startswith(("mask:", "classifier"))) == n
    (tmp_path / "mask.safetensors").unlink()  # the skin carries its masks
    tuning, _ = load_skin(tmp_path / "skin")
    assert evaluate_skin(tmp_path / "skin", data_dir)["loss"] == rec.metrics["loss"]
    params = dict(tuning.lm.model.named_parameters())
    fresh = dict(load_model(str(base)).model.named_parameters())
    for name, m in masks.items():
        assert torch.equal(params[name][~m], fresh[name][~m])


def test_bf16_autocast_run_evaluates_identically_from_its_skin(tiny_dir, data_dir, tmp_path):
    import warnings

    config = TrainConfig(**{**FAST.__dict__, "mixed_precision": "bf16"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = train_task("sst2", str(tiny_dir("bert")), "ln", {}, config, tmp_path / "s", data_dir, 64, 64)
        got = evaluate_skin(tmp_path / "s", data_dir)
    assert got["loss"] == rec.metrics["loss"] and got["accuracy"] == rec.metrics["accuracy"]
    assert not [w for w in caught if "Dropout mask" in str(w.message)]  # torch's note to itself does not reach users


def test_state_keys_name_exactly_what_state_returns(make_lm, tmp_path):
    from safetensors.torch import save_file

    from lntune.method import build_method, prepare

    lm = make_lm("bert")
    masks = {s.name + ".bias": torch.arange(32) % 3 == 0 for s in lm.norms}
    save_file(masks, tmp_path / "m.safetensors")
    for method, options in (("ln", {"terms": "bias", "mask": str(tmp_path / "m.safetensors")}), ("random", {})):
        tuning = prepare(make_lm("bert"), build_method(method, **options))
        assert tuning.state_keys() == set(tuning.state())


def test_saved_skin_json_fits_the_schema(trained):
    """What save_skin writes is what read_skin's schema (lntune.skin_schema) accepts, evaluation keys included."""
    from lntune.skin import EVAL_NEEDS, FORMAT, read_skin
    from lntune.skin_schema import SkinRecord

    _, skin, _ = trained
    meta = json.loads((skin / "skin.json").read_text())
    SkinRecord.model_validate(meta)
    assert meta["format"] == FORMAT == "lntune-skin/1"
    assert "data_root" not in meta  # recorded only for tasks whose spec names files (local:, conll:)
    assert read_skin(skin, require=EVAL_NEEDS).as_json() == meta  # every key read back, none added


def test_read_skin_is_typed_frozen_and_keeps_old_dict_reads_with_a_note(trained):
    import pytest

    from lntune.skin import read_skin
    from lntune.skin_schema import SkinKeyWarning

    _, skin, _ = trained
    meta = read_skin(skin)
    assert meta.method == "ln" and meta.base.head == "classification" and meta.labels == meta.task.labels
    assert meta.train.seed == meta.as_json()["train"]["seed"] and meta.train.lr > 0  # extras read by attribute too
    with pytest.warns(SkinKeyWarning, match=r"read meta.method, not meta\['method'\]"):
        assert meta["method"] == "ln"
    with pytest.raises(Exception, match="frozen"):
        meta.method = "full"
