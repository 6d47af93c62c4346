"""Figures: heat-map panels side by side and metric-vs-fraction lines. Agg backend, no display."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lntune.analyse.files import save_figure  # noqa: E402

ANNOTATE_CELLS = 400  # write values into cells while a panel is this small


def grid(values: dict[tuple, float], rows: list, cols: list) -> np.ndarray:
    """rows x cols matrix of values[(row, col)]; missing cells are NaN (drawn blank)."""
    return np.array([[values.get((r, c), np.nan) for c in cols] for r in rows], dtype=float)


def heatmap_panels(
    path: str | Path,
    panels: list[tuple[str, np.ndarray]],
    row_labels: list[str],
    col_labels: list[str],
    xlabel: str,
    ylabel: str,
    cbar_label: str,
    title: str = "",
    fmt: str = "{:.2g}",
) -> Path:
    """One heat map per panel, side by side, on one shared colour scale."""
    finite = [m[np.isfinite(m)] for _, m in panels]
    vmax = max((float(v.max()) for v in finite if v.size), default=1.0) or 1.0
    n_rows, n_cols = len(row_labels), len(col_labels)
    width = max(3.0, 0.55 * n_cols + 1.0)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(width * len(panels) + 2.5, 0.32 * n_rows + 1.8), squeeze=False, constrained_layout=True
    )
    image = None
    for ax, (name, m) in zip(axes[0], panels):
        image = ax.imshow(np.ma.masked_invalid(m), cmap="YlOrRd", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_title(name)
        ax.set_xticks(range(n_cols), col_labels, rotation=90 if max(map(len, col_labels)) > 3 else 0)
        ax.set_yticks(range(n_rows), row_labels if ax is axes[0][0] else [""] * n_rows)
        ax.set_xlabel(xlabel)
        if n_rows * n_cols <= ANNOTATE_CELLS:
            _annotate(ax, m, vmax, fmt)
    axes[0][0].set_ylabel(ylabel)
    fig.colorbar(image, ax=axes[0].tolist(), label=cbar_label, shrink=0.9)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _annotate(ax, m: np.ndarray, vmax: float, fmt: str) -> None:
    for (i, j), v in np.ndenumerate(m):
        if np.isfinite(v):
            ax.text(
                j, i, fmt.format(v), ha="center", va="center", fontsize=6, color="white" if v > 0.6 * vmax else "black"
            )


def line_panels(
    path: str | Path,
    panels: list[tuple[str, dict[str, tuple[list[float], list[float]]]]],
    xlabel: str,
    ylabels: list[str],
    title: str = "",
) -> Path:
    """One panel per entry; each maps a line label to (x, y)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False, constrained_layout=True)
    for ax, (name, lines), ylabel in zip(axes[0], panels, ylabels):
        for label, (x, y) in lines.items():
            ax.plot(x, y, marker="o", label=label)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
