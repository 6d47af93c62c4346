"""Report figures: fraction curves with seed spread (paper 002 fig. 5) and efficiency bars (paper 000 fig. 2)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lntune.analyse.files import save_figure  # noqa: E402
from lntune.method.paper import FULL  # noqa: E402
from lntune.report.efficiency import FIELDS, EffRow  # noqa: E402

COLUMNS = 4  # panels per figure row


def _grid(n: int, width: float, height: float):
    cols = min(n, COLUMNS)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             constrained_layout=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def fraction_curves(path: str | Path, series: dict) -> Path:
    """One panel per (model, task), one line per mask kind: mean with a ±std band over seeds."""
    models = {m for m, _ in series}
    fig, axes = _grid(len(series), 4.2, 3.4)
    for ax, ((model, task), entry) in zip(axes, series.items()):
        for kind, (xs, means, stds) in entry["lines"].items():
            line, = ax.plot(xs, means, marker="o", label=kind)
            lo = [m - s for m, s in zip(means, stds)]
            hi = [m + s for m, s in zip(means, stds)]
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        for label, (mean, _) in entry["refs"].items():
            ax.axhline(mean, linestyle="--", color="grey", linewidth=1, label=label)
        ax.set_title(task if len(models) == 1 else f"{model} · {task}")
        ax.set_xlabel("fraction of LN trained")
        ax.set_ylabel(entry["ylabel"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def efficiency_bars(path: str | Path, rows: list[EffRow]) -> Path:
    """Per model: train and inference time per method relative to FT = 100 (absolute without FT), peak memory."""
    models = list(dict.fromkeys(e.model for e in rows))
    fig, axes = plt.subplots(len(models), len(FIELDS), figsize=(4.2 * len(FIELDS), 0.35 * len(rows) + 2.2),
                             squeeze=False, constrained_layout=True)
    for axrow, model in zip(axes, models):
        mine = [e for e in rows if e.model == model]
        labels = [e.row for e in mine][::-1]  # first method on top
        for ax, (f, absolute, rel, _) in zip(axrow, FIELDS):
            # times relative to FT as paper 000 fig. 2; memory in MB, which reads better than a ratio
            use_rel = f != "peak_memory_mb" and all(e.relative.get(f) is not None for e in mine)
            vals = [(e.relative[f] if use_rel else e.absolute.get(f)) or 0.0 for e in mine][::-1]
            errs = [e.spread.get(f, 0.0) if use_rel else 0.0 for e in mine][::-1]  # std over timing repeats
            bars = ax.barh(labels, vals, xerr=errs if any(errs) else None, ecolor="black", capsize=2,
                           color=["tab:red" if e.method == FULL else "tab:blue" for e in mine][::-1])
            ax.bar_label(bars, fmt="%.0f" if use_rel or f == "peak_memory_mb" else "%.3g", fontsize=7, padding=2)
            if use_rel:
                ax.axvline(100, color="grey", linestyle="--", linewidth=1)
            ax.set_xlabel(rel if use_rel else absolute)
            ax.set_title(model if len(models) > 1 else absolute.split(" (")[0])
            ax.margins(x=0.15)
    return save_figure(fig, path)


def forest(path: str | Path, rows: list[tuple[str, list[tuple[str, float, float, float]], str]], margin: float,
           xlabel: str) -> Path:
    """One block per contrast: the pooled mean paired difference with its CI (bold) above each task's, a line at 0
    and dashed lines at ±margin (the equivalence bounds). rows: (contrast, [(label, mean, low, high)], verdict).

    A contrast far from 0 (a floor such as Head only, 60 points off) would squash every other CI to a dot, so
    the axis breaks: such contrasts get their own panel with its own scale beside the main one."""
    n = sum(len(points) for _, points, _ in rows)
    panels = _forest_panels([(min(p[2] for p in pts), max(p[3] for p in pts)) for _, pts, _ in rows], margin)
    fig, axes = plt.subplots(1, len(panels), sharey=True, figsize=(7.5, 0.28 * n + 0.45 * len(rows) + 1.2),
                             width_ratios=[3 if main else 1 for _, main, _ in panels], layout="constrained")
    axes = list(np.atleast_1d(axes))
    for ax, (limits, _, members) in zip(axes, panels):
        ticks, labels = _forest_draw(ax, rows, margin, members)  # each contrast drawn in its own panel only
        ax.set_xlim(*limits)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ticks, labels, fontsize=8)
    for left, right in zip(axes, axes[1:]):  # the break: no spine between panels, slashes where the axis jumps
        left.spines["right"].set_visible(False)
        right.spines["left"].set_visible(False)
        right.tick_params(left=False)
        kw = dict(marker=[(-1, -1.5), (1, 1.5)], markersize=8, linestyle="none", color="k", clip_on=False)
        left.plot([1, 1], [0, 1], transform=left.transAxes, **kw)
        right.plot([0, 0], [0, 1], transform=right.transAxes, **kw)
    fig.supxlabel(xlabel, fontsize=10)
    return save_figure(fig, path)


def _forest_panels(hulls: list[tuple[float, float]],
                   margin: float) -> list[tuple[tuple[float, float], bool, set[int]]]:
    """Per panel, left to right: its x-limits, whether it is the main one (around 0), and the contrasts (indices
    into `hulls`) drawn in it. A contrast whose whole CI lies beyond 5 margins from 0 goes to a panel of its
    own side (no margin, as for times: one panel)."""
    near = 5 * margin if margin > 0 else float("inf")
    main = {i for i, h in enumerate(hulls) if h[1] >= -near and h[0] <= near}
    below = {i for i, h in enumerate(hulls) if h[1] < -near}
    above = {i for i, h in enumerate(hulls) if h[0] > near}
    lo = min([-margin, 0.0] + [hulls[i][0] for i in main])
    hi = max([margin, 0.0] + [hulls[i][1] for i in main])
    panels = [((lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo)), True, main)]
    for side, first in ((below, True), (above, False)):
        if side:
            a, b = min(hulls[i][0] for i in side), max(hulls[i][1] for i in side)
            pad = max(0.15 * (b - a), 0.5)
            panel = ((a - pad, b + pad), False, side)
            panels = [panel] + panels if first else panels + [panel]
    return panels


def _forest_draw(ax, rows: list[tuple[str, list[tuple[str, float, float, float]], str]], margin: float,
                 members: set[int]) -> tuple[list[float], list[str]]:
    y, ticks, labels = 0.0, [], []
    for k, (name, points, verdict) in enumerate(rows):
        for i, (label, mean, low, high) in enumerate(points):
            pooled = i == 0
            if k in members:
                ax.errorbar(mean, -y, xerr=[[mean - low], [high - mean]], fmt="D" if pooled else "o",
                            color="black" if pooled else "tab:blue", markersize=6 if pooled else 4,
                            elinewidth=2 if pooled else 1, capsize=2)
            ticks.append(-y)
            labels.append(f"{name}  [{verdict}]" if pooled else f"    {label}")
            y += 1
        y += 0.6
    ax.axvline(0, color="grey", linewidth=1)
    for m in (-margin, margin):
        ax.axvline(m, color="grey", linestyle="--", linewidth=0.8)
    return ticks, labels


def budget_curve(path: str | Path, lines: dict[str, tuple[list[int], list[float], list[float], list[float]]],
                 ylabel: str, title: str) -> Path:
    """One line per method: the mean score over seeds after each listed epoch, with the seeds' min-max band."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    for label, (epochs, means, lows, highs) in lines.items():
        line, = ax.plot(epochs, means, marker="o", label=label)
        ax.fill_between(epochs, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({e for epochs, *_ in lines.values() for e in epochs}))
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("epoch (points of one 16-epoch schedule, not separate runs)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
