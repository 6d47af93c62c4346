"""LoRA (Hu et al. 2021): W x + (alpha / r) B A x on chosen projections, B starting at zero."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lntune.errors import MethodError
from lntune.method.base import Method, Options, Tuned
from lntune.method.sites import LORA_DEFAULTS, blocks, features
from lntune.spec.rules import SEED, Rule, ruled


@dataclass
class LoRAConfig(Options):
    r: int = ruled(8, Rule(int, 1))  # rank
    alpha: float = ruled(16.0, Rule(float, 0, 1e4, above=True))  # the update is scaled by alpha / r
    # comma-separated projection names; auto: query,value / c_attn / q_proj,v_proj
    targets: str = ruled("auto", Rule(str, what="auto or comma-separated projection names (e.g. query,value)"))
    seed: int = ruled(0, SEED)  # initialises A


class LowRank(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, r: int, scaling: float, generator: torch.Generator) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(r, fan_in))
        self.B = nn.Parameter(torch.zeros(fan_out, r))
        self.scaling = scaling
        with torch.no_grad():
            bound = 1 / math.sqrt(fan_in)
            self.A.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.A.T @ self.B.T) * self.scaling


def _targets(block: nn.Module, spec: str) -> list[tuple[str, nn.Module]]:
    names = dict(block.named_modules())
    if spec != "auto":
        wanted = tuple(t.strip() for t in spec.split(","))
    else:
        wanted = next((d for d in LORA_DEFAULTS if any(n.split(".")[-1] in d for n in names)), ())
    found = [(n, m) for n, m in names.items() if n and n.split(".")[-1] in wanted]
    if not found:
        raise MethodError(f"lora: no projection named {spec!r} in the blocks; pass targets, e.g. -o lora.targets=query,value")
    return found


class LoRA(Method):
    name = "lora"
    adds_modules = True
    merge = "lora"
    peft_type = "LORA"
    Config = LoRAConfig

    def apply(self, lm) -> list[Tuned]:
        c = self.config
        g = torch.Generator().manual_seed(c.seed)
        tuned = []
        for path, block in blocks(lm):
            for name, target in _targets(block, c.targets):
                fan_in, fan_out = features(target)
                w = target.weight
                lora = LowRank(fan_in, fan_out, c.r, c.alpha / c.r, g).to(w.device, w.dtype)
                target.add_module("lora", lora)
                target.register_forward_hook(lambda m, args, out, l=lora: out + l(args[0]))
                tuned += [Tuned(f"{path}.{name}.lora.{n}", p) for n, p in lora.named_parameters()]
        return tuned
