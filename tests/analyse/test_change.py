import pytest
import torch

from lntune.analyse.change import Bases, cell_table, ln_table, measure, ranking
from lntune.api import train_task
from lntune.model import load_model
from lntune.train import TrainConfig

FAST = TrainConfig(lr=3e-2, epochs=1, batch_size=16, eval_batch_size=32, progress=False)
Q = "bert.encoder.layer.1.attention.self.query"


def test_unchanged_model_has_zero_change(tiny_dir, tmp_path):
    base = tiny_dir("bert")
    load_model(str(base)).model.save_pretrained(tmp_path / "same")
    c = measure(tmp_path / "same", str(base))
    assert c.rows and all(r["sum"] == 0.0 for r in c.rows)
    assert not any(r["param"].startswith("classifier") for r in c.rows)  # the fresh head is not base


def test_hand_made_change_is_measured_exactly(tiny_dir, tmp_path):
    base = tiny_dir("bert")
    lm = load_model(str(base))
    p = dict(lm.model.named_parameters())
    with torch.no_grad():
        p[f"{Q}.weight"] += 0.5  # 32 x 32 elements moved by 0.5
        p[f"{Q}.bias"][:8] -= 0.25  # 8 of 32 moved by 0.25
        p["bert.encoder.layer.3.output.LayerNorm.weight"][:4] += 1.0  # gain: 4 of 32 by 1
    lm.model.save_pretrained(tmp_path / "tuned")
    c = measure(tmp_path / "tuned", str(base), task="sst2")
    cells = cell_table(c.rows)
    assert cells[("attention.self.query", 1)] == pytest.approx((1024 * 0.5 + 8 * 0.25) / (1024 + 32), rel=1e-6)
    assert cells[("output.LayerNorm", 3)] == pytest.approx(4 / 64, rel=1e-6)  # gain and bias pooled
    assert cells[("attention.self.query", 0)] == 0.0
    ln = ln_table(c.rows)
    assert ln[("ffn", "weight", 3)] == pytest.approx(4 / 32) and ln[("ffn", "bias", 3)] == 0.0
    assert ln[("embeddings", "weight", None)] == 0.0
    moved = {k for k, v in cells.items() if v}
    assert moved == {("attention.self.query", 1), ("output.LayerNorm", 3)}
    top = ranking([c])[0]
    assert top["component"] == "attention.self.query" and top["mean"] == pytest.approx(
        cells[("attention.self.query", 1)] / 4
    )


def test_skin_change_matches_its_tensors(tiny_dir, data_dir, tmp_path):
    base = tiny_dir("bert")
    train_task("sst2", str(base), "ln", {"terms": "bias"}, FAST, tmp_path / "skin", data_dir, 32, 32)
    from safetensors.torch import load_file

    tuned = load_file(str(tmp_path / "skin" / "tuned.safetensors"))
    fresh = dict(load_model(str(base)).model.named_parameters())
    c = measure(tmp_path / "skin", bases=Bases())
    assert c.task == "sst2" and c.model == str(base)
    by_param = {r["param"]: r["sum"] / r["n"] for r in c.rows}
    for name, value in tuned.items():
        if name.startswith("classifier"):
            assert name not in by_param
            continue
        want = float((value - fresh[name].detach()).abs().mean())
        assert by_param[name] == pytest.approx(want, rel=1e-5) and want > 0
    assert all(v == 0.0 for n, v in by_param.items() if n not in tuned)  # gains and every other weight stayed


@pytest.mark.parametrize("method", ["ln", "full"])
def test_the_in_memory_change_equals_the_skins(method, tiny_dir, data_dir, tmp_path):
    """A sweep measures the change of a run in memory against the base values it loaded (no skin written and
    read back, no second load): the same numbers, to the bit, as measuring the saved skin."""
    from lntune.sweep.run import _change

    seen = {}
    train_task("sst2", str(tiny_dir("bert")), method, {}, FAST, tmp_path / "skin", data_dir, 32, 16,
               on_trained=lambda tuning, base: seen.update(change=_change(tuning, base)))
    rows = measure(tmp_path / "skin").rows
    assert seen["change"]["cells"] == [[c, layer, d] for (c, layer), d in cell_table(rows).items()]
    assert seen["change"]["ln"] == [[n, t, layer, d] for (n, t, layer), d in ln_table(rows).items()]
    assert any(d > 0 for *_, d in seen["change"]["ln"])
