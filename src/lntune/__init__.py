"""lntune: parameter-efficient fine-tuning centred on LayerNorm tuning.

    import lntune
    rec = lntune.train_task("sst2", "minilm", "ln")   # LN-tuning of the embedded MiniLM on SST-2
    print(rec.metrics, rec.out)                        # dev metrics and the skin's directory (a RunResult)

Every public name is imported on first use, so `import lntune` (and `lntune --help`) stays fast.
"""
from __future__ import annotations

import sys
import types

from lntune.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "METHODS": "lntune.method",
    "Record": "lntune.spec.records",
    "RunResult": "lntune.spec.results",
    "TrainConfig": "lntune.spec.train",
    "build_method": "lntune.method",
    "evaluate_skin": "lntune.api",
    "generate_base": "lntune.api",
    "generate_skin": "lntune.api",
    "load_model": "lntune.model",
    "load_plugins": "lntune.plugins",
    "load_skin": "lntune.skin",
    "map_norms": "lntune.model",
    "prepare": "lntune.method",
    "save_skin": "lntune.skin",
    "train": "lntune.train.loop",
    "train_task": "lntune.api",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


class _Package(types.ModuleType):
    # `lntune.train` names both a subpackage and the function. Importing the subpackage sets the
    # package attribute to the module, which would hide the function from __getattr__; this
    # property keeps `lntune.train` the function, as it was when the package imported it eagerly.
    @property
    def train(self):  # noqa: ANN201 - the function's own signature is documented there
        from lntune.train.loop import train

        return train

    @train.setter
    def train(self, value) -> None:  # the import system's setattr for the subpackage: keep the function
        pass


sys.modules[__name__].__class__ = _Package
