"""An lntune plugin: one method, registered when this module is imported.

"bitfit_no_ln" is BitFit without the normalisation layers' biases: does BitFit's score come from the LN
biases it includes? (`lntune train --method bitfit_no_ln`). Load it with

    LNTUNE_PLUGINS=bitfit_no_ln PYTHONPATH=examples/plugin lntune methods

or, from an installed package, with an entry point in its pyproject.toml:

    [project.entry-points."lntune.plugins"]
    bitfit_no_ln = "my_package.bitfit_no_ln"
"""
from dataclasses import dataclass

from lntune.errors import MethodError
from lntune.method import METHODS, Method, Tuned
from lntune.method.base import Options


@dataclass
class BitFitNoLNConfig(Options):
    pass


class BitFitNoLN(Method):
    name = "bitfit_no_ln"
    Config = BitFitNoLNConfig
    merge = "copy"  # its tensors are the base's own: lntune merge copies them in

    def apply(self, lm) -> list[Tuned]:
        norm_biases = {f"{site.name}.bias" for site in lm.norms}
        tuned = [Tuned(n, p) for n, p in lm.base_parameters() if n.endswith(".bias") and n not in norm_biases]
        if not tuned:
            raise MethodError(f"bitfit_no_ln: {type(lm.model).__name__} has no bias terms outside its norms")
        return tuned


METHODS[BitFitNoLN.name] = BitFitNoLN
