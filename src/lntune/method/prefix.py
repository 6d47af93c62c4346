"""Prefix-tuning (Li & Liang 2021; P-tuning v2, Liu et al. 2022): l trainable key and value vectors
per layer, prepended to the keys and values of every self-attention block.

Mechanism. Each self-attention module gets a `prefix` child holding its vectors, and a view of the
model config whose attention implementation is "lntune_prefix", a function registered in
transformers' AttentionInterface. The module computes queries, keys and values as usual (rotary
embedding and KV-cache update included) and hands them to that function, which prepends the prefix,
gives the mask l always-visible columns and runs the model's own sdpa or eager attention. So the cache
holds real tokens only, real tokens keep positions 0..n-1, prefix keys carry no position, and nothing
here touches the cache API. The model's own config keeps its implementation, so transformers builds
the masks for real tokens exactly as it would without a prefix.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lntune.errors import MethodError
from lntune.method.base import Method, Options, Tuned
from lntune.spec.rules import SEED, Rule, ruled

ATTENTION = "lntune_prefix"  # the AttentionInterface name a prefixed module routes to
CHILD = "prefix"  # the per-layer module, a child of each self-attention module
ENCODER = "prefix_encoder"  # the reparameterising MLP, a child of the model until finalize
BASES = ("sdpa", "eager")  # implementations whose masks prefix_attention knows how to extend

# Self-attention classes that pass keys to ALL_ATTENTION_FUNCTIONS after rotary and cache update,
# and their (key/value heads, head size). A new architecture is one line, once tested.
KV_SHAPES: dict[str, Callable[[nn.Module], tuple[int, int]]] = {
    "BertSelfAttention": lambda m: (m.num_attention_heads, m.attention_head_size),
    "GPT2Attention": lambda m: (m.num_heads, m.head_dim),
    "LlamaAttention": lambda m: (m.k_proj.out_features // m.head_dim, m.head_dim),  # GQA: kv heads
}
# (GPT-2's reorder_and_upcast_attn variant of eager is bypassed: the routed module calls GPT-2's plain
# eager, the same attention without its fp16 overflow guard.)


@dataclass
class PrefixConfig(Options):
    length: int = ruled(16, Rule(int, 1))  # l: key vectors and value vectors per layer
    # produce the prefix from an MLP while training (Li & Liang); folded before saving
    reparam: bool = ruled(False, Rule(bool))
    reparam_hidden: int = ruled(512, Rule(int, 1))  # hidden width of that MLP
    # std of the random initial prefix (with reparam: of the MLP's input embedding)
    init_std: float = ruled(0.02, Rule(float, 0, 10, above=True))
    seed: int = ruled(0, SEED)  # initialises the prefix (or the MLP)


class Prefix(nn.Module):
    """One layer's prefix: `length` keys and values of width kv_heads * head_dim, kept in float32."""

    def __init__(self, length: int, kv_heads: int, head_dim: int, interface, eager: Callable) -> None:
        super().__init__()
        self.key = nn.Parameter(torch.zeros(length, kv_heads * head_dim))
        self.value = nn.Parameter(torch.zeros(length, kv_heads * head_dim))
        self.length, self.kv_heads, self.head_dim = length, kv_heads, head_dim
        self.interface, self.eager = interface, eager  # the model file's own attention functions
        self.source: Callable | None = None  # while an MLP produces the prefix: () -> (key, value)

    def forward(self, batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key, value = self.source() if self.source is not None else (self.key, self.value)
        return self._heads(key, batch, dtype), self._heads(value, batch, dtype)

    def _heads(self, x: torch.Tensor, batch: int, dtype: torch.dtype) -> torch.Tensor:
        # (l, heads * dim) -> (batch, heads, l, dim): the layout attention functions take keys in
        x = x.to(dtype).view(self.length, self.kv_heads, self.head_dim).transpose(0, 1)
        return x.unsqueeze(0).expand(batch, -1, -1, -1)


class PrefixEncoder(nn.Module):
    """Li & Liang's reparameterisation in P-tuning v2's layout: embedding -> Linear -> tanh -> Linear
    to every layer's keys and values; each layer computes only its own rows of the last Linear."""

    def __init__(self, length: int, width: int, hidden: int, layers: int, std: float, g: torch.Generator) -> None:
        super().__init__()
        self.width = width
        self.embedding = nn.Parameter(torch.randn(length, width, generator=g) * std)
        self.down = nn.Linear(width, hidden)
        self.up = nn.Linear(hidden, layers * 2 * width)
        with torch.no_grad():  # torch's default init, but drawn from the method's own generator
            for lin in (self.down, self.up):
                bound = 1 / math.sqrt(lin.in_features)
                lin.weight.uniform_(-bound, bound, generator=g)
                lin.bias.uniform_(-bound, bound, generator=g)

    def forward(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.down(self.embedding))
        rows = slice(2 * self.width * layer, 2 * self.width * (layer + 1))
        kv = F.linear(h, self.up.weight[rows], self.up.bias[rows])
        return kv[:, : self.width], kv[:, self.width :]


class _RoutedConfig:
    """A prefixed attention module's config: the model's own, read and written through, except that
    its attention implementation routes to prefix_attention. Reading through keeps later changes
    (set_attn_implementation) in effect; only the module sees the routing, never mask creation."""

    _attn_implementation = ATTENTION

    def __init__(self, base) -> None:
        object.__setattr__(self, "base", base)

    def __getattr__(self, name: str):
        if name.startswith("__"):  # copy/pickle protocol lookups must not reach the wrapped config
            raise AttributeError(name)
        return getattr(self.base, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self.base, name, value)

    def __reduce__(self):
        return _RoutedConfig, (self.base,)


def _extend_mask(mask, query: torch.Tensor, n_keys: int, length: int, causal: bool, sdpa: bool):
    """The mask for [prefix; keys]: prefix columns visible to every query, the rest as the model meant."""
    q = query.shape[2]
    if mask is None:
        if not (sdpa and causal and q > 1):
            return None  # nothing is masked, so the prefix is visible as it is
        # sdpa would apply is_causal (top-left aligned) to the keys with the prefix in front, hiding
        # real keys; spell out the top-left causal mask it meant over the real keys alone.
        mask = torch.ones(q, n_keys, dtype=torch.bool, device=query.device).tril()[None, None]
    if not torch.is_tensor(mask):
        raise MethodError(
            f"prefix tuning cannot extend an attention mask of type {type(mask).__name__}; use sdpa or eager attention"
        )
    fill = True if mask.dtype == torch.bool else 0.0  # bool masks say "may attend", float masks add
    visible = torch.full((*mask.shape[:-1], length), fill, dtype=mask.dtype, device=mask.device)
    return torch.cat([visible, mask], dim=-1)


def prefix_attention(module: nn.Module, query, key, value, attention_mask, **kwargs):
    """Registered as "lntune_prefix": prepend the module's prefix, then run its real implementation."""
    prefix: Prefix = getattr(module, CHILD)
    base = module.config.base._attn_implementation
    if base not in BASES:
        raise MethodError(
            f"prefix tuning runs on sdpa or eager attention, but {type(module).__name__} is set to {base!r}; "
            "call model.set_attn_implementation('sdpa') or load the model with attn_implementation='sdpa'"
        )
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal
    mask = _extend_mask(attention_mask, query, key.shape[2], prefix.length, causal, base == "sdpa")
    pk, pv = prefix(key.shape[0], key.dtype)
    attend = prefix.interface.get_interface(base, prefix.eager)
    return attend(module, query, torch.cat([pk, key], dim=2), torch.cat([pv, value], dim=2), mask, **kwargs)


def attention_sites(model: nn.Module) -> list[tuple[str, nn.Module, int, int]]:
    """(path, module, kv_heads, head_dim) of every self-attention module, in layer order."""
    sites = []
    for name, m in model.named_modules():
        if type(m).__name__ in KV_SHAPES and not getattr(m, "is_cross_attention", False):
            sites.append((name, m, *KV_SHAPES[type(m).__name__](m)))
    if not sites:
        seen = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.endswith("Attention")})
        raise MethodError(
            f"prefix tuning does not support {type(model).__name__}: its attention classes "
            f"({', '.join(seen) or 'none found'}) are not among {', '.join(KV_SHAPES)}; "
            "add the class to lntune.method.prefix.KV_SHAPES once it routes through ALL_ATTENTION_FUNCTIONS"
        )
    return sites


def _attention_functions(model: nn.Module, module: nn.Module) -> tuple[object, Callable]:
    # The model file's own interface and eager function: its eager variant (e.g. Llama's repeat_kv
    # for GQA) is what get_interface falls back to for "eager".
    source = sys.modules[type(module).__module__]
    interface = getattr(source, "ALL_ATTENTION_FUNCTIONS", None)
    eager = getattr(source, "eager_attention_forward", None)
    if interface is None or eager is None:
        raise MethodError(
            f"prefix tuning: {type(module).__name__} in {type(model).__name__} does not use transformers' "
            "attention interface; remove the class from lntune.method.prefix.KV_SHAPES"
        )
    if isinstance(module.config, _RoutedConfig):
        raise MethodError(f"prefix tuning: {type(model).__name__} already has a prefix; apply the method once")
    impl = module.config._attn_implementation
    if impl not in BASES:
        raise MethodError(
            f"prefix tuning runs on sdpa or eager attention, but {type(model).__name__} uses {impl!r}; "
            "load the model with attn_implementation='sdpa'"
        )
    return interface, eager


def _prefixes(model: nn.Module) -> list[tuple[str, Prefix]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, Prefix)]


class PrefixTuning(Method):
    name = "prefix"
    preset_key = "prefix"
    adds_modules = True
    block = "mha"
    Config = PrefixConfig

    def apply(self, lm) -> list[Tuned]:
        c, model = self.config, lm.model
        sites = attention_sites(model)
        functions = [_attention_functions(model, m) for _, m, _, _ in sites]
        for interface, _ in functions:
            type(interface).register(ATTENTION, prefix_attention)
        g = torch.Generator().manual_seed(c.seed)
        encoder = self._encoder(model, sites, g) if c.reparam else None
        tuned = []
        for i, ((path, attn, heads, dim), (interface, eager)) in enumerate(zip(sites, functions)):
            prefix = Prefix(c.length, heads, dim, interface, eager).to(next(attn.parameters()).device)
            if encoder is not None:
                prefix.source = partial(encoder, i)
                prefix.requires_grad_(False)  # the vectors only receive the MLP's output in finalize
            else:
                with torch.no_grad():
                    for p in (prefix.key, prefix.value):
                        p.copy_(torch.randn(p.shape, generator=g) * c.init_std)
                tuned += [Tuned(f"{path}.{CHILD}.{n}", p) for n, p in prefix.named_parameters()]
            attn.add_module(CHILD, prefix)
            attn.config = _RoutedConfig(attn.config)
        if encoder is not None:
            tuned = [Tuned(f"{ENCODER}.{n}", p) for n, p in encoder.named_parameters()]
        return tuned

    def _encoder(self, model: nn.Module, sites, g: torch.Generator) -> PrefixEncoder:
        widths = {heads * dim for _, _, heads, dim in sites}
        if len(widths) != 1:
            raise MethodError(
                f"prefix reparam needs one key width in all layers, {type(model).__name__} has {sorted(widths)}; "
                "use reparam=false"
            )
        if hasattr(model, ENCODER):
            raise MethodError(f"prefix tuning: {type(model).__name__} already has a {ENCODER}; apply the method once")
        c = self.config
        encoder = PrefixEncoder(c.length, widths.pop(), c.reparam_hidden, len(sites), c.init_std, g)
        model.add_module(ENCODER, encoder.to(next(sites[0][1].parameters()).device))
        return encoder

    def finalize(self, tuning) -> None:
        """Fold the MLP into plain per-layer vectors (the same numbers it produces) and drop it."""
        model = tuning.lm.model
        encoder = getattr(model, ENCODER, None)
        if encoder is None:
            return
        folded = []
        with torch.no_grad():
            for path, prefix in _prefixes(model):
                key, value = prefix.source()
                prefix.key.copy_(key)
                prefix.value.copy_(value)
                prefix.source = None
                folded += [Tuned(f"{path}.{n}", p.requires_grad_(True)) for n, p in prefix.named_parameters()]
        mlp = {id(p) for p in encoder.parameters()}
        at = next((i for i, t in enumerate(tuning.tuned) if id(t.param) in mlp), len(tuning.tuned))
        rest = [t for t in tuning.tuned if id(t.param) not in mlp]
        tuning.tuned = rest[:at] + folded + rest[at:]
        delattr(model, ENCODER)

    def skin_options(self) -> dict:
        return {**self.options(), "reparam": False}  # the skin holds the folded vectors
