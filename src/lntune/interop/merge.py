"""`lntune merge SKIN OUT`: the skin folded into the base weights, saved as a plain transformers folder.

Methods that only change existing tensors (LN, BitFit, full, head, random subsets) are copied in; LoRA is
folded as W + (alpha / r) B A (transposed for GPT-2's Conv1D). Methods that add modules the base
architecture does not have (adapters, prefix, 3V, MAM) cannot be merged: a clear error says so."""
from __future__ import annotations

from pathlib import Path

import torch

from lntune.errors import SkinError
from lntune.heads import get_head
from lntune.method import METHODS, parts
from lntune.skin_card import merged_card
from lntune.interop.peft import _check_out, _fresh_of
from lntune.model.embedded import hub_id
from lntune.skin import load_skin, read_skin


def merge_skin(skin: str | Path, out: str | Path, model: str | None = None, overwrite: bool = False) -> Path:
    """Write the base model with SKIN folded in to OUT (save_pretrained, with its tokenizer and label names).

    >>> from lntune.interop import merge_skin
    >>> merge_skin("runs/sst2-ln", "runs/sst2-ln-merged")  # doctest: +SKIP
    >>> # then: AutoModelForSequenceClassification.from_pretrained("runs/sst2-ln-merged")
    """
    out = Path(out)
    _check_out(out, overwrite)
    meta = read_skin(skin)
    methods = parts(meta.method)
    if any(m.merge is None for m in methods):
        mergeable = ", ".join(name for name, m in METHODS.items() if m.merge is not None)
        raise SkinError(f"{skin}: a {meta.method} skin adds modules the base model does not have, so it cannot "
                        f"be merged into plain transformers weights (mergeable: {mergeable}); serve it with "
                        "lntune serve, or load it with lntune.load_skin")
    tuning, meta = load_skin(skin, model)
    lm = _fresh_of(meta, model)
    state = {k: v for k, v in tuning.lm.model.state_dict().items() if ".lora." not in k}
    lm.model.load_state_dict(state, strict=True)
    for m in methods:
        if m.merge == "lora":  # its own options: the whole rebuild for a lone method, its part's for a composite
            _fold_lora(lm.model, tuning.lm.model, meta.rebuild if len(methods) == 1 else meta.rebuild[m.name])
    labels = meta.labels
    if labels and get_head(lm.head).named_labels:
        lm.model.config.id2label = dict(enumerate(labels))
        lm.model.config.label2id = {v: i for i, v in enumerate(labels)}
    _save(lm, out, merged_card(meta, _base_id(meta), get_head(lm.head).auto_class))
    return out


def _base_id(meta) -> str | None:
    return hub_id(meta.base.source or {})


def _fold_lora(target: torch.nn.Module, skinned: torch.nn.Module, options: dict) -> None:
    """W += (alpha / r) B A on every projection the skin's LoRA wraps."""
    scaling = options["alpha"] / options["r"]
    with torch.no_grad():
        for name, module in skinned.named_modules():
            lora = getattr(module, "lora", None)
            if lora is None or not hasattr(lora, "A"):
                continue
            delta = (lora.B @ lora.A) * scaling  # (out, in)
            weight = target.get_submodule(name).weight
            weight.add_((delta.T if type(module).__name__ == "Conv1D" else delta).to(weight.dtype))


def _save(lm, out: Path, card: str) -> None:
    """save_pretrained into a temporary folder beside OUT, then one rename: no half-written model."""
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        lm.model.save_pretrained(tmp)
        lm.tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(card)  # lntune's card, with the base and the labels
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
