"""Skins outside lntune: PEFT adapters (export, import), plain transformers folders (merge), the Hub (model
cards, push, skins by repo id). `lntune export|import|merge|push --help`."""
from __future__ import annotations

from lntune.lazy import lazy_exports

_EXPORTS = {
    "export_peft": "lntune.interop.peft",
    "import_peft": "lntune.interop.peft",
    "merge_skin": "lntune.interop.merge",
    "model_card": "lntune.interop.card",
    "push_skin": "lntune.interop.hub",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
