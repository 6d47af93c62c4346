"""The analyses of the founding papers: which components move in fine-tuning (change),
which parameters carry information about a task (fisher), Fisher-selected LN masks (mask),
and dev metric against the fraction of LN trained (curve). `lntune analyse --help`.
"""
from __future__ import annotations

from lntune.lazy import lazy_exports

_EXPORTS = {
    "Change": "lntune.analyse.change",
    "CurveConfig": "lntune.analyse.curve",
    "FisherConfig": "lntune.analyse.fisher",
    "KINDS": "lntune.analyse.mask",
    "MaskSpec": "lntune.analyse.mask",
    "TaskFisher": "lntune.analyse.fisher",
    "build_mask": "lntune.analyse.mask",
    "empirical_fisher": "lntune.analyse.fisher",
    "fisher_ranking": "lntune.analyse.fisher",
    "measure": "lntune.analyse.change",
    "ranking": "lntune.analyse.change",
    "run_curve": "lntune.analyse.curve",
    "save_mask": "lntune.analyse.mask",
    "task_fisher": "lntune.analyse.fisher",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)  # `lntune --help` must not import torch
