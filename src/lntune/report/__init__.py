"""Paper-style reports of a results store: `lntune report RESULTS` or write_report(RESULTS)."""
from __future__ import annotations

from lntune.lazy import lazy_exports

_EXPORTS = {
    "Cell": "lntune.report.aggregate",
    "aggregate": "lntune.report.aggregate",
    "build_document": "lntune.report.report",
    "choose_lr": "lntune.report.aggregate",
    "higher_is_better": "lntune.report.aggregate",
    "kruskal_wallis": "lntune.report.stats",
    "load_records": "lntune.report.aggregate",
    "write_report": "lntune.report.report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)  # `lntune --help` must not import torch
