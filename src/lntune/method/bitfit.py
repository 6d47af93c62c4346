"""BitFit (Zaken et al. 2022): train every bias term of the pretrained model, LN biases included."""
from __future__ import annotations

from dataclasses import dataclass

from lntune.errors import MethodError
from lntune.method.base import Method, Options, Tuned


@dataclass
class BitFitConfig(Options):
    pass


class BitFit(Method):
    name = "bitfit"
    merge = "copy"
    Config = BitFitConfig

    def apply(self, lm) -> list[Tuned]:
        tuned = [Tuned(n, p) for n, p in lm.base_parameters() if n.endswith(".bias")]
        if not tuned:
            raise MethodError(f"bitfit: {type(lm.model).__name__} has no bias terms (Llama-style models have none)")
        return tuned
