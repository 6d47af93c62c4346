"""Find every normalisation layer of a transformer and say where it sits.

Labels name the sub-block a norm belongs to, whatever the LN placement:
  embeddings  the LN on the embedding output (BERT)
  mha         the norm of the attention sub-block: BERT's LN after MHA
              (attention.output.LayerNorm), GPT-2's ln_1, Llama's input_layernorm
  ffn         the norm of the feed-forward sub-block: BERT's LN after FFN
              (output.LayerNorm), GPT-2's ln_2, Llama's post_attention_layernorm
  final       the norm after the last block (GPT-2 ln_f, Llama norm)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from lntune.errors import ArchitectureError

LABELS = ("embeddings", "mha", "ffn", "final")

# Names checked before the keyword rules: "post_attention_layernorm" mentions
# attention but is the pre-FFN norm of Llama-style blocks.
_MHA_NAMES = r"(ln_1|input_layernorm|attention_norm|attn_norm|norm1|self_attn_layer_norm|ln_attn)"
_FFN_NAMES = r"(ln_2|post_attention_layernorm|ffn_norm|mlp_norm|norm2|final_layer_norm|ln_mlp)"
_BERT_FFN = "output.LayerNorm"  # BERT/RoBERTa: block.output.LayerNorm follows the FFN
_MHA_KEYWORDS = ("attention", "attn")
_FFN_KEYWORDS = ("mlp", "ffn", "feed_forward", "intermediate")


@dataclass(frozen=True)
class NormSite:
    """One normalisation module: its path, label and block index (None outside blocks)."""

    name: str
    module: nn.Module
    label: str
    layer: int | None

    @property
    def has_bias(self) -> bool:
        return getattr(self.module, "bias", None) is not None


@dataclass(frozen=True)
class NormMap:
    """Every norm of a model, in module order, plus where the blocks are."""

    sites: tuple[NormSite, ...]
    num_layers: int
    blocks: str = ""  # path of the ModuleList holding the transformer blocks

    def __iter__(self):
        return iter(self.sites)

    def __len__(self) -> int:
        return len(self.sites)


def is_norm(module: nn.Module) -> bool:
    """nn.LayerNorm and the RMSNorm/LayerNorm classes models define themselves."""
    if isinstance(module, (nn.LayerNorm, getattr(nn, "RMSNorm", nn.LayerNorm))):
        return True
    cls = type(module).__name__
    return cls.endswith(("RMSNorm", "LayerNorm")) and isinstance(getattr(module, "weight", None), nn.Parameter)


def _block_list(model: nn.Module) -> tuple[str, int]:
    """The ModuleList holding the transformer blocks: the longest one whose children contain norms."""
    best, best_len = None, 0
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > best_len:
            if any(is_norm(m) for m in mod[0].modules()):
                best, best_len = name, len(mod)
    if best is None:
        raise ArchitectureError(
            f"{type(model).__name__}: no list of transformer blocks containing normalisation layers was found"
        )
    return best, best_len


def _label_in_block(rel: str) -> str | None:
    if rel == _BERT_FFN:
        return "ffn"
    if re.search(rf"(^|\.){_FFN_NAMES}$", rel):
        return "ffn"
    if re.search(rf"(^|\.){_MHA_NAMES}$", rel):
        return "mha"
    parts = rel.lower().split(".")
    if any(k in p for p in parts for k in _MHA_KEYWORDS):
        return "mha"
    if any(k in p for p in parts for k in _FFN_KEYWORDS):
        return "ffn"
    return None


def _mapped_label(name: str, norm_map: dict[str, str] | None) -> str | None:
    for pattern, label in (norm_map or {}).items():
        if re.search(pattern, name):
            if label not in LABELS:
                raise ArchitectureError(f"norm_map: label {label!r} for {pattern!r} is not one of {LABELS}")
            return label
    return None


def _unknown(model: nn.Module, name: str) -> ArchitectureError:
    return ArchitectureError(
        f"{type(model).__name__}: cannot tell where normalisation layer {name!r} sits. "
        f"Pass a mapping from a name pattern (regex) to one of {', '.join(LABELS)}, e.g. "
        f"Python: map_norms(model, norm_map={{r'{name.split('.')[-1]}$': 'mha'}}); "
        f"CLI: --norm-map '{{\"{name.split('.')[-1]}$\": \"mha\"}}'"
    )


def map_norms(model: nn.Module, norm_map: dict[str, str] | None = None) -> NormMap:
    """Label every norm of `model`; `norm_map` (regex -> label) overrides detection.

    >>> import transformers
    >>> from lntune import map_norms
    >>> cfg = transformers.BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=8)
    >>> [(s.name, s.label, s.layer) for s in map_norms(transformers.BertModel(cfg))][:3]
    [('embeddings.LayerNorm', 'embeddings', None), ('encoder.layer.0.attention.output.LayerNorm', 'mha', 0), ('encoder.layer.0.output.LayerNorm', 'ffn', 0)]
    """
    blocks, num_layers = _block_list(model)
    block_re = re.compile(rf"^{re.escape(blocks)}\.(\d+)\.(.+)$")
    sites = []
    for name, mod in model.named_modules():
        if not is_norm(mod):
            continue
        m = block_re.match(name)
        layer = int(m.group(1)) if m else None
        label = _mapped_label(name, norm_map)
        if label is None and m:
            label = _label_in_block(m.group(2))
        elif label is None:
            label = "embeddings" if "embed" in name.lower() else "final"
        if label is None:
            raise _unknown(model, name)
        sites.append(NormSite(name, mod, label, layer))
    if not sites:
        raise ArchitectureError(f"{type(model).__name__}: the model has no normalisation layers")
    return NormMap(tuple(sites), num_layers, blocks)
