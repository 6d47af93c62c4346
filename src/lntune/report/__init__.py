"""Paper-style reports of a results store: `lntune report RESULTS` or write_report(RESULTS)."""

from lntune.report.aggregate import Cell, aggregate, choose_lr, higher_is_better, load_records
from lntune.report.report import build_document, write_report
from lntune.report.stats import kruskal_wallis

__all__ = ["Cell", "aggregate", "build_document", "choose_lr", "higher_is_better", "kruskal_wallis", "load_records",
           "write_report"]
