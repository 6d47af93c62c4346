"""Bottleneck adapters (Houlsby / Pfeiffer; He et al. 2021), attached with forward hooks.

seq_adapter_ffn  h + up(relu(down(h))) on the FFN output projection
seq_adapter_mha  the same on the attention output projection
par_adapter_ffn  FFN(x) + s * up(relu(down(x))), beside the FFN (scaled parallel adapter)

The up-projection starts at zero, so at step 0 the model computes exactly what it did.
Adapters hang off the block as submodules, so pretrained parameter names do not change.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lntune.method.base import Method, Options, Tuned
from lntune.method.sites import FFN_IN, FFN_OUT, MHA_OUT, blocks, features, find
from lntune.spec.rules import SCALE, SEED, Rule, ruled


@dataclass
class AdapterConfig(Options):
    size: int = ruled(16, Rule(int, 1))  # bottleneck width d_b
    scale: float = ruled(1.0, SCALE)  # s: multiplies the adapter output (He et al. use 4 for the parallel adapter)
    seed: int = ruled(0, SEED)  # initialises the down-projection


@dataclass
class ParallelAdapterConfig(AdapterConfig):
    scale: float = ruled(4.0, SCALE)


class Bottleneck(nn.Module):
    def __init__(self, hidden: int, size: int, scale: float, generator: torch.Generator) -> None:
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        self.scale = scale
        with torch.no_grad():
            nn.init.normal_(self.down.weight, std=hidden**-0.5, generator=generator)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(torch.relu(self.down(x)))


class _Adapter(Method):
    attr: str  # submodule name on each block
    site: tuple[str, ...]  # where the output hook goes
    parallel_input: tuple[str, ...] | None = None  # where the parallel adapter reads its input

    def apply(self, lm) -> list[Tuned]:
        g = torch.Generator().manual_seed(self.config.seed)
        tuned = []
        for path, block in blocks(lm):
            out_proj = find(block, self.site, "projection for the adapter", path)
            hidden = features(out_proj)[1]
            w = out_proj.weight
            adapter = Bottleneck(hidden, self.config.size, self.config.scale, g).to(w.device, w.dtype)
            block.add_module(self.attr, adapter)
            if self.parallel_input:
                _hook_parallel(find(block, self.parallel_input, "FFN input", path), out_proj, adapter)
            else:
                out_proj.register_forward_hook(lambda m, args, out, a=adapter: out + a(out))
            tuned += [Tuned(f"{path}.{self.attr}.{n}", p) for n, p in adapter.named_parameters()]
        return tuned


def _hook_parallel(ffn: nn.Module, out_proj: nn.Module, adapter: Bottleneck) -> None:
    stash = {}

    def keep_input(_, args):
        stash["x"] = args[0]

    ffn.register_forward_pre_hook(keep_input)
    out_proj.register_forward_hook(lambda m, args, out: out + adapter(stash.pop("x")))


class SeqAdapterFFN(_Adapter):
    name = "seq_adapter_ffn"
    preset_key = "adapter"
    adds_modules = True
    block = "ffn"
    adapter = True
    Config = AdapterConfig
    attr, site = "adapter_ffn", FFN_OUT


class SeqAdapterMHA(_Adapter):
    name = "seq_adapter_mha"
    preset_key = "adapter"
    adds_modules = True
    block = "mha"
    adapter = True
    Config = AdapterConfig
    attr, site = "adapter_mha", MHA_OUT


class ParAdapterFFN(_Adapter):
    name = "par_adapter_ffn"
    preset_key = "adapter"
    adds_modules = True
    block = "ffn"
    adapter = True
    Config = ParallelAdapterConfig
    attr, site, parallel_input = "par_adapter_ffn", FFN_OUT, FFN_IN
