"""Composition is data: `prefix+ln` is a list of parts, each with its own options.

Parts apply in order; a tensor chosen by two parts (BitFit and LN both take LN biases)
trains once, unmasked if any part takes it whole.
"""
from __future__ import annotations

from lntune.errors import MethodError
from lntune.method.base import Method, Tuned


class Composite(Method):
    def __init__(self, parts: list[Method]) -> None:
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise MethodError(f"method {'+'.join(names)}: a part appears twice")
        self.parts = parts
        self.name = "+".join(names)

    def options(self) -> dict:
        return {p.name: p.options() for p in self.parts}

    def skin_options(self) -> dict:
        return {p.name: p.skin_options() for p in self.parts}

    def apply(self, lm) -> list[Tuned]:
        merged: dict[int, Tuned] = {}
        for part in self.parts:
            for t in part.apply(lm):
                seen = merged.get(id(t.param))
                if seen is None:
                    merged[id(t.param)] = t
                elif seen.mask is not None:
                    seen.mask = None if t.mask is None else seen.mask | t.mask
        return list(merged.values())

    def finalize(self, tuning) -> None:
        for part in self.parts:
            part.finalize(tuning)
