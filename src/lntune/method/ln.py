"""LN-tuning (Qi et al.): train the gain and/or bias of chosen normalisation layers in place."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from lntune.errors import MethodError
from lntune.method.base import Method, Options, Tuned
from lntune.model.archmap import LABELS, NormMap, NormSite
from lntune.spec.rules import Rule, ruled

TERMS = {"gain": ("weight",), "bias": ("bias",), "both": ("weight", "bias")}


@dataclass
class LNConfig(Options):
    terms: str = ruled("both", Rule(str, choices=tuple(TERMS)))  # gain | bias | both
    # comma-separated subset of the norm labels
    modules: str = ruled("embeddings,mha,ffn,final", Rule(str, what=f"a comma-separated subset of {', '.join(LABELS)}"))
    # all | top-half | bottom-half | ranges like 0-5 or 0,2,4-5
    layers: str = ruled("all", Rule(str, what="all, top-half, bottom-half or layer ranges like 0-5,8"))
    # safetensors file: parameter name -> bool tensor of elements to train
    mask: str | None = ruled(None, Rule(str, what="a safetensors file of boolean masks", unset="no mask"))

    def check(self) -> None:
        unknown = set(self.module_set) - set(LABELS)
        if unknown:
            raise MethodError(f"--ln-modules: unknown {sorted(unknown)}; choose from {', '.join(LABELS)}")

    @property
    def module_set(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.modules.split(",") if m.strip())


def parse_layers(spec: str, num_layers: int) -> set[int]:
    """'all', 'top-half', 'bottom-half' or comma-separated indices and inclusive ranges."""
    half = num_layers // 2
    named = {"all": range(num_layers), "top-half": range(half, num_layers), "bottom-half": range(half)}
    if spec in named:
        return set(named[spec])
    layers: set[int] = set()
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise MethodError(f"--ln-layers {spec!r}: use all, top-half, bottom-half or ranges like 0-5,8")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo > hi or hi >= num_layers:
            raise MethodError(f"--ln-layers {spec!r}: layers run from 0 to {num_layers - 1}")
        layers.update(range(lo, hi + 1))
    return layers


def _site_in_layers(site: NormSite, layers: set[int], num_layers: int) -> bool:
    # The embeddings LN sits below block 0 and the final norm above the last block,
    # so layer halves keep the paper's meaning "close to input / close to output".
    if site.layer is not None:
        return site.layer in layers
    return (0 in layers) if site.label == "embeddings" else (num_layers - 1 in layers)


def select_norm_params(norms: NormMap, config: LNConfig) -> list[tuple[str, torch.nn.Parameter]]:
    layers = parse_layers(config.layers, norms.num_layers)
    chosen = []
    for site in norms:
        if site.label in config.module_set and _site_in_layers(site, layers, norms.num_layers):
            for attr in TERMS[config.terms]:
                p = getattr(site.module, attr, None)
                if isinstance(p, torch.nn.Parameter):
                    chosen.append((f"{site.name}.{attr}", p))
    if not chosen:
        raise MethodError(
            f"LN selection is empty (terms={config.terms}, modules={config.modules}, layers={config.layers}); "
            "RMSNorm models (Llama, SmolLM2) have gains only: use --ln-terms gain or both"
        )
    return chosen


def load_mask_file(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        masks = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise MethodError(f"--ln-mask {path}: cannot read it as safetensors ({e}); make one with lntune analyse mask") from e
    bad = [k for k, v in masks.items() if v.dtype != torch.bool]
    if bad:
        raise MethodError(f"--ln-mask {path}: tensors {bad[:3]} are not boolean")
    return masks


def apply_masks(chosen, masks: dict[str, torch.Tensor], source: str) -> list[Tuned]:
    names = {n for n, _ in chosen}
    extra = sorted(set(masks) - names)
    if extra:
        raise MethodError(f"{source}: masks for parameters outside the selection, e.g. {extra[:3]}; widen the selection or rebuild the mask")
    tuned = []
    for name, p in chosen:
        if name not in masks:
            raise MethodError(f"{source}: no mask for selected parameter {name}; rebuild the mask for this selection")
        if masks[name].shape != p.shape:
            raise MethodError(f"{source}: mask for {name} has shape {tuple(masks[name].shape)}, parameter has {tuple(p.shape)}")
        if masks[name].any():  # an all-false mask means the tensor does not train at all
            tuned.append(Tuned(name, p, masks[name].to(p.device)))
    return tuned


class LNTuning(Method):
    name = "ln"
    lr_family = "ln"
    merge = "copy"
    peft_type = "LN_TUNING"
    records_change = True
    serves_mixed = True  # masked LN-tuning too: its masks are inside the skin
    hub_tag = "layernorm-tuning"
    Config = LNConfig

    def apply(self, lm) -> list[Tuned]:
        chosen = select_norm_params(lm.norms, self.config)
        if self.config.mask:
            return apply_masks(chosen, load_mask_file(self.config.mask), f"--ln-mask {self.config.mask}")
        return [Tuned(n, p) for n, p in chosen]

    def skin_options(self) -> dict:
        return {**self.options(), "mask": None}  # the masks travel inside the skin
