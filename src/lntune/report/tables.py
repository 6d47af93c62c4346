"""Table models: rows of formatted values with marks, notes and deltas, independent of the output format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

BEST, SECOND = "best", "second"


@dataclass
class Value:
    """One displayed cell; `value` is on the display scale (81.2, not 0.812) and drives marks and CSV."""

    text: str = "-"  # the formatted number(s), without marks
    value: float | None = None
    std: float | None = None
    delta: float | None = None  # vs the reference row, display scale
    good: bool | None = None  # whether the delta is an improvement (its colour in HTML)
    delta_text: str = ""
    mark: str = ""  # best | second
    note: str = ""  # footnote sign such as "*"


@dataclass
class Row:
    label: str
    values: list[Value]
    section: bool = False  # a sub-heading spanning the table (the model of the rows below)
    italic: bool = False  # the reference row of an ablation


@dataclass
class Table:
    name: str  # file stem of its CSV/JSON
    title: str
    columns: list[str]  # headers of the value columns
    rows: list[Row] = field(default_factory=list)
    label_header: str = "Method"
    notes: list[str] = field(default_factory=list)

    def column(self, header: str) -> list[Value | None]:
        """The values of one column, None on section rows (for tests and callers)."""
        i = self.columns.index(header)
        return [None if r.section else r.values[i] for r in self.rows]

    def cell(self, label: str, header: str) -> Value:
        for r in self.rows:
            if not r.section and r.label == label:
                return r.values[self.columns.index(header)]
        raise KeyError(f"{self.name}: no row {label!r}")

    def to_json(self) -> dict:
        return asdict(self)

    def to_csv_rows(self) -> list[dict]:
        """One dict per row: the number behind each column, plus its std and delta where the table has them."""
        extras = {
            i: (any(r.values[i].std is not None for r in self.rows if not r.section),
                any(r.values[i].delta is not None for r in self.rows if not r.section))
            for i in range(len(self.columns))
        }
        out, section = [], ""
        for r in self.rows:
            if r.section:
                section = r.label
                continue
            d = {"section": section, self.label_header: r.label}
            for i, (col, v) in enumerate(zip(self.columns, r.values)):
                d[col] = v.value if v.value is not None else (None if v.text == "-" else v.text)
                has_std, has_delta = extras[i]
                if has_std:
                    d[f"{col} std"] = v.std
                if has_delta:
                    d[f"{col} delta"] = v.delta
            out.append(d)
        return out


def blocks(rows: list[Row]) -> list[list[Row]]:
    """Runs of data rows between section rows; marks are given within a block."""
    out: list[list[Row]] = [[]]
    for r in rows:
        if r.section:
            out.append([])
        else:
            out[-1].append(r)
    return [b for b in out if b]


def mark(values: list[Value], higher: bool, decimals: int) -> None:
    """Bold the best and underline the second best distinct value as displayed; ties share the mark."""
    shown = [round(v.value, decimals) for v in values if v.value is not None]
    ranked = sorted(set(shown), reverse=higher)
    for v in values:
        if v.value is None:
            continue
        r = round(v.value, decimals)
        if ranked and r == ranked[0]:
            v.mark = BEST
        elif len(ranked) > 1 and r == ranked[1]:
            v.mark = SECOND


def mark_column(table: Table, col: int, higher: bool, decimals: int) -> None:
    for block in blocks(table.rows):
        mark([r.values[col] for r in block], higher, decimals)


def fmt_number(x: float | None, decimals: int) -> str:
    return "-" if x is None else f"{x:.{decimals}f}"


def fmt_score(mean: float, std: float | None, decimals: int) -> str:
    """`81.2 ± 0.4` as in the papers' tables (std as a subscript there)."""
    return fmt_number(mean, decimals) + ("" if std is None else f" ± {std:.{decimals}f}")


def fmt_delta(delta: float | None, decimals: int) -> str:
    if delta is None:
        return ""
    return f"{(delta if round(delta, decimals) != 0 else 0.0):+.{decimals}f}"  # never "-0.0"


def fmt_pct(pct: float | None) -> str:
    """#Para. with two significant digits below 1% (0.044%, 0.0006%) and up to three above (100%)."""
    if pct is None:
        return "-"
    if pct >= 1:
        return np.format_float_positional(pct, precision=3, fractional=False, trim="-") + "%"
    return np.format_float_positional(pct, precision=2, fractional=False, trim="-") + "%"


def score_value(mean: float, std: float | None, decimals: int) -> Value:
    return Value(fmt_score(mean, std, decimals), mean, std)


def with_delta(v: Value, ref: float | None, higher: bool, decimals: int) -> Value:
    """Attach value - ref; `good` says whether the change is an improvement for this metric."""
    if v.value is None or ref is None:
        return v
    v.delta = v.value - ref
    shown = round(v.delta, decimals)
    v.good = None if shown == 0 else (shown > 0) == higher
    v.delta_text = fmt_delta(v.delta, decimals)
    return v
