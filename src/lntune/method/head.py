"""Head only: the pretrained model stays frozen and only the task head trains (the floor every method must beat)."""
from __future__ import annotations

from dataclasses import dataclass

from lntune.method.base import Method, Options, Tuned


@dataclass
class HeadConfig(Options):
    pass


class HeadOnly(Method):
    name = "head"
    merge = "copy"
    Config = HeadConfig

    def apply(self, lm) -> list[Tuned]:
        return []  # prepare() makes the head trainable for every method; this one adds nothing to it
