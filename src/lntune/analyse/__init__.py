"""The analyses of the founding papers: which components move in fine-tuning (change),
which parameters carry information about a task (fisher), Fisher-selected LN masks (mask),
and dev metric against the fraction of LN trained (curve). `lntune analyse --help`.
"""

from lntune.analyse.change import Change, measure, ranking
from lntune.analyse.curve import CurveConfig, run_curve
from lntune.analyse.fisher import FisherConfig, TaskFisher, empirical_fisher, fisher_ranking, task_fisher
from lntune.analyse.mask import KINDS, MaskSpec, build_mask, save_mask

__all__ = [
    "KINDS",
    "Change",
    "CurveConfig",
    "FisherConfig",
    "MaskSpec",
    "TaskFisher",
    "build_mask",
    "empirical_fisher",
    "fisher_ranking",
    "measure",
    "ranking",
    "run_curve",
    "save_mask",
    "task_fisher",
]
