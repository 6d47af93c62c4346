"""Skins for serving tests, made without training: seeded perturbations of the LN gains/biases and a
random head, saved with save_skin so that loading them is the real thing."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lntune.method import build_method, prepare
from lntune.model import load_model
from lntune.skin import save_skin

# texts of very different lengths, so that mixed batches pad most rows
TEXTS = [
    "fine .",
    "a charming and often affecting journey through the ups and downs of a small town , told with warmth .",
    ("the cat sat on the mat .", "a cat was sitting on a mat ."),
    "unflinchingly bleak and desperate",
    "it 's a bad sign when you 're rooting for the film to end , and that happens early and often here .",
    ("he left .", "after a long dinner with friends who had come from far away , he finally went home ."),
    "ok",
    "the acting , costumes , music , cinematography and sound are all astounding given the production 's "
    "austere locales .",
]


def make_skin(base: str | Path, out: Path, seed: int, options: dict | None = None, labels=("negative", "positive"),
              head: str = "classification", scale: float = 0.3, method: str = "ln") -> Path:
    lm = load_model(str(base), head, max(len(labels), 1))
    tuning = prepare(lm, build_method(method, **(options or {})))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in tuning.all:
            delta = torch.randn(t.param.shape, generator=g) * scale
            t.param.add_(delta if t.mask is None else delta * t.mask)
    task = {"name": f"task{seed}", "head": head, "labels": list(labels), "metric": "accuracy"}
    return save_skin(out, tuning, {"task": task, "metrics": {"accuracy": 0.5}})


def mask_file(base: str | Path, path: Path, terms: str = "bias") -> Path:
    from safetensors.torch import save_file

    lm = load_model(str(base))
    g = torch.Generator().manual_seed(7)
    attrs = ("weight", "bias") if terms == "both" else ("weight",) if terms == "gain" else ("bias",)
    masks = {f"{s.name}.{a}": torch.rand(getattr(s.module, a).shape, generator=g) < 0.3
             for s in lm.norms for a in attrs if getattr(s.module, a, None) is not None}
    save_file(masks, path)
    return path


def skin_specs(arch: str, base: Path, tmp: Path) -> dict[str, dict]:
    """Several kinds of LN skin: all norms, top half only, one term only, masked, 3 labels, regression."""
    one_term = "gain" if arch == "llama" else "bias"  # RMSNorm has gains only
    return {
        "all": {},
        "top": {"options": {"layers": "top-half"}},
        "term": {"options": {"terms": one_term, "modules": "mha,final"}},
        "masked": {"options": {"terms": one_term, "mask": str(mask_file(base, tmp / "mask.safetensors", one_term))}},
        "three": {"labels": ("a", "b", "c"), "options": {"layers": "bottom-half"}},
        "reg": {"labels": (), "head": "regression"},
    }


@pytest.fixture
def skins_for(tiny_dir, tmp_path):
    """skins_for(arch, only) -> (base dir, {name: skin dir}) with the kinds of skin_specs (or those in `only`)."""

    def make(arch: str = "bert", only: tuple[str, ...] | None = None):
        base = tiny_dir(arch)
        specs = skin_specs(arch, base, tmp_path)
        return base, {n: make_skin(base, tmp_path / n, seed=i, **kw) for i, (n, kw) in enumerate(specs.items())
                      if only is None or n in only}

    return make


@pytest.fixture
def bert_bank(skins_for):
    """bert_bank(loaded) -> (SkinBank on tiny BERT with the `loaded` skins, base dir, {name: skin dir}) over the
    skins all, top, three and reg."""
    from lntune.serve import SkinBank

    def make(loaded: tuple[str, ...]):
        base, skins = skins_for("bert", only=("all", "top", "three", "reg"))
        bank = SkinBank(str(base))
        for name in loaded:
            bank.add_skin(name, skins[name])
        return bank, base, skins

    return make


def reference_logits(bank, skin_dir: Path, base: str | Path, texts: list) -> torch.Tensor:
    """The texts through a fresh base with the skin applied the normal way (load_skin), alone."""
    from lntune.skin import load_skin

    tuning, _ = load_skin(skin_dir, model=str(base))
    model = tuning.lm.model.eval()
    with torch.inference_mode():
        return model(**bank.collate(bank.encode(texts))).logits


@pytest.fixture(scope="module")
def module_skins(tmp_path_factory, tokenizer):
    """(tiny BERT base dir, {name: skin dir}) for skins all, three and reg, made once per module: for tests
    that only read skins (or copy them before changing them)."""
    import transformers as tf

    tmp = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=128, num_labels=2, initializer_range=0.2)
    base = tmp / "bert-base"
    tf.AutoModel.from_config(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    specs = {k: v for k, v in skin_specs("bert", base, tmp).items() if k in ("all", "three", "reg")}
    return base, {n: make_skin(base, tmp / "skins" / n, seed=i, **kw) for i, (n, kw) in enumerate(specs.items())}


@pytest.fixture(scope="module")
def module_bank(module_skins):
    """A SkinBank over module_skins with all three loaded; tests that add skins remove them again."""
    from lntune.serve import SkinBank

    base, skins = module_skins
    bank = SkinBank(str(base))
    for name, path in skins.items():
        bank.add_skin(name, path)
    return bank
