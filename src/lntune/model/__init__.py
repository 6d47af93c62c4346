"""Models: loading (aliases, hub ids, folders, the embedded GGUF) and the map of their norms."""
from __future__ import annotations

from lntune.lazy import lazy_exports

_EXPORTS = {
    "LABELS": "lntune.model.archmap",
    "LoadedModel": "lntune.model.load",
    "NormMap": "lntune.model.archmap",
    "NormSite": "lntune.model.archmap",
    "load_model": "lntune.model.load",
    "map_norms": "lntune.model.archmap",
    "wrap": "lntune.model.load",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)  # lntune.model.embedded must not import torch
