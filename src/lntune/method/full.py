"""Full fine-tuning: every pretrained parameter trains (the papers' upper baseline)."""
from __future__ import annotations

from dataclasses import dataclass

from lntune.method.base import Method, Options, Tuned


@dataclass
class FullConfig(Options):
    pass


class FullFineTuning(Method):
    name = "full"
    lr_family = "full"
    merge = "copy"
    records_change = True
    Config = FullConfig

    def apply(self, lm) -> list[Tuned]:
        return [Tuned(n, p) for n, p in lm.base_parameters()]
