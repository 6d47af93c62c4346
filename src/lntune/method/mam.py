"""MAM adapter (He et al. 2021, "towards a unified view"): prefix-tuning on attention plus a
scaled parallel adapter beside the FFN. Paper 000 aligns it at l = d_b = 8 for BERT-base."""
from __future__ import annotations

from dataclasses import dataclass

from lntune.method.adapter import ParAdapterFFN
from lntune.method.base import Method, Options, Tuned
from lntune.method.compose import Composite
from lntune.method.prefix import PrefixTuning
from lntune.spec.rules import SCALE, SEED, Rule, ruled


@dataclass
class MAMConfig(Options):
    length: int = ruled(16, Rule(int, 1))  # prefix length l
    size: int = ruled(16, Rule(int, 1))  # parallel adapter bottleneck d_b
    scale: float = ruled(4.0, SCALE)  # parallel adapter scaling s
    seed: int = ruled(0, SEED)  # initialises both parts


class MAM(Method):
    name = "mam"
    preset_key = "mam"
    adds_modules = True
    Config = MAMConfig

    def _parts(self) -> Composite:
        c = self.config
        return Composite([PrefixTuning(length=c.length, seed=c.seed), ParAdapterFFN(size=c.size, scale=c.scale, seed=c.seed)])

    def apply(self, lm) -> list[Tuned]:
        return self._parts().apply(lm)
