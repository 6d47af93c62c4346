"""Kruskal-Wallis H test between methods (paper 002 section 3.1), with the degenerate cases spelled out."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from scipy.stats import kruskal


@dataclass
class KruskalResult:
    statistic: float | None  # H
    pvalue: float | None
    note: str = ""  # why there is no p-value


def kruskal_wallis(*groups: list[float]) -> KruskalResult:
    """scipy.stats.kruskal; "n/a" instead of an exception or NaN when every value is the same."""
    groups = [list(map(float, g)) for g in groups]
    if len(groups) < 2 or any(not g for g in groups):
        return KruskalResult(None, None, "n/a (needs two non-empty groups)")
    values = [v for g in groups for v in g]
    if all(v == values[0] for v in values):  # older scipy raises, newer returns NaN
        return KruskalResult(None, None, "n/a (all values equal)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = kruskal(*groups)
    except ValueError as e:
        return KruskalResult(None, None, f"n/a ({e})")
    h, p = float(res.statistic), float(res.pvalue)
    if math.isnan(p):
        return KruskalResult(None, None, "n/a (all values equal)")
    return KruskalResult(h, p)


def format_p(result: KruskalResult) -> str:
    """Five decimals as paper 002 prints them (0.56599); scientific below 1e-4."""
    if result.pvalue is None:
        return result.note
    return f"{result.pvalue:.5f}" if result.pvalue >= 1e-4 else f"{result.pvalue:.2e}"
