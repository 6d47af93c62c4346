"""Exactness: a mixed batch gives each row what its skin gives alone on a fresh base (load_skin)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lntune.errors import ArchitectureError
from lntune.model.archmap import NormSite
from lntune.serve import SkinBank
from lntune.serve.mixed import MixedNorm, Route

from .conftest import TEXTS, reference_logits

TOL = 1e-5


def _rows(names: list[str], n: int) -> list[tuple[str, object]]:
    """n rows cycling through the skins and the texts at different strides: every skin gets short and long rows."""
    return [(names[i % len(names)], TEXTS[(3 * i) % len(TEXTS)]) for i in range(n)]


def _mixed_vs_alone(bank, base, skins, rows):
    names = [n for n, _ in rows]
    got = bank.logits(names, bank.collate(bank.encode([t for _, t in rows])))
    worst, per_skin = 0.0, {}
    for name, skin_dir in skins.items():
        idx = [i for i, n in enumerate(names) if n == name]
        want = reference_logits(bank, skin_dir, base, [rows[i][1] for i in idx])
        mine = torch.stack([got[i][1] for i in idx])
        assert mine.shape == want.shape  # the head width of this skin, not the widest in the bank
        worst = max(worst, float((mine - want).abs().max()))
        per_skin[name] = want
    return worst, per_skin


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_mixed_batch_equals_each_skin_alone(arch, skins_for):
    base, skins = skins_for(arch)
    bank = SkinBank(str(base))
    for name, path in skins.items():
        bank.add_skin(name, path)
    worst, per_skin = _mixed_vs_alone(bank, base, skins, _rows(list(skins), 24))
    assert worst <= TOL
    # the skins really differ, so a bank that served one skin for every row would fail above
    a, b = per_skin["all"], per_skin["top"]
    assert float((a - b).abs().max()) > 1e-3


def test_untuned_norms_keep_base_values(skins_for):
    base, skins = skins_for("bert", only=("top",))
    bank = SkinBank(str(base))
    bank.add_skin("top", skins["top"])
    slot = 1
    for n in bank.norms:
        layer = next(s.layer for s in bank.lm.norms if s.name == n.name)
        tuned = layer is not None and layer >= 2  # top half of 4 layers; BERT has no final norm
        assert torch.equal(n.gain[slot], n.base_gain) != tuned


def test_one_row_alone_equals_the_same_row_padded_in_a_mixed_batch(skins_for):
    base, skins = skins_for("gpt2")  # decoders pick the last real token: padding must not move it
    bank = SkinBank(str(base))
    for name, path in skins.items():
        bank.add_skin(name, path)
    rows = _rows(list(skins), 12)
    batch = bank.logits([n for n, _ in rows], bank.collate(bank.encode([t for _, t in rows])))
    for i in (0, 5, 6):
        alone = bank.logits([rows[i][0]], bank.collate(bank.encode([rows[i][1]])))[0][1]
        assert float((alone - batch[i][1]).abs().max()) <= TOL


def test_single_skin_batch_is_bit_identical_to_the_plain_model(skins_for):
    base, skins = skins_for("bert", only=("all", "top"))
    bank = SkinBank(str(base))
    bank.add_skin("other", skins["top"])
    bank.add_skin("all", skins["all"])
    texts = [t for _, t in _rows(["all"], 8)]
    got = torch.stack([row for _, row in bank.logits(["all"] * 8, bank.collate(bank.encode(texts)))])
    assert torch.equal(got, reference_logits(bank, skins["all"], base, texts))


def _site(module: nn.Module) -> NormSite:
    return NormSite("probe", module, "mha", 0)


@pytest.mark.parametrize("kind", ["layernorm", "llama-rms"])
def test_per_row_gather_matches_the_module_with_that_rows_values(kind):
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    torch.manual_seed(0)
    module = nn.LayerNorm(16) if kind == "layernorm" else LlamaRMSNorm(16, eps=1e-6)
    route = Route()
    norm = MixedNorm(_site(module), route)
    gains = torch.randn(4, 16)
    biases = torch.randn(4, 16) if kind == "layernorm" else None
    norm.set_tables(gains, biases)
    x = torch.randn(5, 7, 16) * 3 + 1
    slots = [2, 0, 3, 2, 1]
    route.set(slots)
    with torch.no_grad():
        got = module(x)
    route.clear()
    for i, s in enumerate(slots):
        ref = nn.LayerNorm(16) if kind == "layernorm" else LlamaRMSNorm(16, eps=1e-6)
        with torch.no_grad():
            ref.weight.copy_(gains[s])
            if biases is not None:
                ref.bias.copy_(biases[s])
        with torch.no_grad():
            want = ref(x[i : i + 1])[0]
        if kind == "layernorm":
            assert float((got[i] - want).abs().max()) <= 1e-6
        else:  # the same operations in the same order as LlamaRMSNorm: bit for bit
            assert torch.equal(got[i], want)


def test_norms_that_are_not_gain_after_normalisation_are_refused():
    class OnePlusRMSNorm(nn.Module):  # Gemma scales by (1 + w): splitting off w would be wrong
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + self.weight)

    with pytest.raises(ArchitectureError, match="not normalise-then-gain"):
        MixedNorm(_site(OnePlusRMSNorm(8)), Route())


def test_embedded_minilm_mixed_equals_separate(tmp_path):
    from lntune.model.load import resolve

    from .conftest import make_skin, mask_file

    base = resolve("minilm")
    masks = mask_file(base, tmp_path / "m.safetensors", "both")
    skins = {
        "all": make_skin(base, tmp_path / "all", seed=0, scale=0.1),
        "masked": make_skin(base, tmp_path / "masked", seed=1, scale=0.1,
                            options={"terms": "both", "mask": str(masks)}),
    }
    bank = SkinBank("minilm")
    for name, path in skins.items():
        bank.add_skin(name, path)
    worst, _ = _mixed_vs_alone(bank, base, skins, _rows(list(skins), 6))
    assert worst <= TOL
