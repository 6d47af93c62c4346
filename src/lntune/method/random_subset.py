"""A random subset of the pretrained parameters, as many as LN-tuning trains (paper 002's control).

scope "all" draws from every pretrained weight, as paper 002 does; scope "blocks" from the transformer
blocks only. On a small fine-tuning set most word-embedding rows never get a gradient, and on MiniLM they
are about half of all weights, so "all" handicaps the control; "blocks" is the fair form.
The subset is drawn from a seed, so a skin stores the seed, not the masks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lntune.errors import MethodError
from lntune.method.base import Method, Options, Tuned
from lntune.method.ln import LNConfig, select_norm_params
from lntune.spec.rules import SEED, Rule, ruled


@dataclass
class RandomConfig(Options):
    seed: int = ruled(0, SEED)  # draws the subset
    # elements to train; None: as many as LN-tuning with default options
    count: int | None = ruled(None, Rule(int, 1, unset="as many as LN-tuning trains"))
    # all: every pretrained weight (paper 002) | blocks: the transformer blocks only
    scope: str = ruled("all", Rule(str, choices=("all", "blocks")))


SCOPES = ("all", "blocks")


class RandomSubset(Method):
    name = "random"
    merge = "copy"
    Config = RandomConfig

    def apply(self, lm) -> list[Tuned]:
        if self.config.scope not in SCOPES:
            raise MethodError(f"random: scope {self.config.scope!r}; choose one of {', '.join(SCOPES)}")
        named = lm.base_parameters()
        if self.config.scope == "blocks":
            named = [(n, p) for n, p in named if n.startswith(lm.norms.blocks + ".")]
        total = sum(p.numel() for _, p in named)
        count = self.config.count or sum(p.numel() for _, p in select_norm_params(lm.norms, LNConfig()))
        if not 0 < count <= total:
            raise MethodError(f"random: count {count} must be between 1 and {total:,}")
        chosen = torch.zeros(total, dtype=torch.bool)
        chosen[torch.randperm(total, generator=torch.Generator().manual_seed(self.config.seed))[:count]] = True
        tuned, start = [], 0
        for name, p in named:
            mask = chosen[start : start + p.numel()].view(p.shape)
            start += p.numel()
            if mask.any():
                tuned.append(Tuned(name, p, mask.to(p.device), store_mask=False))
        return tuned
