"""Rows given in Python (issue 25 #10): a list of dicts, a pandas DataFrame, or a datasets Dataset or
DatasetDict, read with the columns a local: spec names (text=A or A+B, label=COL, head=regression) and checked
by the same rules as a local: file (a missing label, NaN, a lone surrogate: each names its row).

    >>> train_task(df, columns={"text": "sentence", "label": "label"})  # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lntune.data.local import TEXT_FILE_HEADS, _class_name, _score, _sorted_labels, text_cell
from lntune.data.task import Task
from lntune.errors import DataError
from lntune.heads import DEFAULT, HEADS

COLUMN_KEYS = ("text", "label", "head")  # the local: spec's column options
_SPLIT_NAMES = {"train": "train", "dev": "dev", "validation": "dev", "test": "test"}  # DatasetDict's names too
KIND = "rows"  # a skin trained on rows records this task name; lntune eval then needs --task


def is_rows(data: Any) -> bool:
    """Whether `data` is in-memory rows (anything but a task name)."""
    return not isinstance(data, str) and data is not None


def _as_list(data: Any, what: str) -> list[dict]:
    if isinstance(data, list):
        rows = data
    elif hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        rows = data.to_dict("records")
    elif hasattr(data, "to_list") and hasattr(data, "column_names"):  # a datasets Dataset
        rows = data.to_list()
    else:
        raise DataError(f"{what}: {type(data).__name__} is not data lntune reads; give a list of dicts, a pandas "
                        "DataFrame, a datasets Dataset or DatasetDict, or a task name")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"{what}: row {bad} is a {type(rows[bad]).__name__}, not a dict of columns")
    if not rows:
        raise DataError(f"{what}: no rows")
    return rows


def _splits(data: Any, dev: Any) -> dict[str, list[dict]]:
    """{split: rows}: a DatasetDict's (or a dict's) splits, or `data` as train and `dev` as dev."""
    if hasattr(data, "keys") and not hasattr(data, "columns") and not isinstance(data, list):
        unknown = sorted(set(data.keys()) - set(_SPLIT_NAMES))
        if unknown or "train" not in data.keys():
            raise DataError(f"splits {sorted(data.keys())}: lntune reads train, and validation (or dev) and test "
                            "when given" + (f"; rename {unknown}" if unknown else "; a train split is needed"))
        out = {_SPLIT_NAMES[k]: _as_list(v, f"split {k}") for k, v in data.items()}
    else:
        out = {"train": _as_list(data, "the training rows")}
    if dev is not None:
        if "dev" in out:
            raise DataError("dev rows given twice: as a validation split and as dev=; give one")
        out["dev"] = _as_list(dev, "the dev rows")
    return out


@dataclass(frozen=True)
class RowsTask(Task):
    """Rows held in memory, one text (or a pair) and a label per row."""

    rows: tuple[tuple[str, tuple], ...] = ()  # (split, rows as given)
    text_columns: tuple[str, ...] = ()
    label_column: str = "label"

    @classmethod
    def build(cls, data: Any, columns: dict[str, str] | None = None, dev: Any = None) -> "RowsTask":
        columns = dict(columns or {})
        bad = sorted(set(columns) - set(COLUMN_KEYS))
        if bad or "text" not in columns:
            raise DataError(f"columns={columns}: give text=COL (or COL+COL for a pair), and label=COL and "
                            f"head=regression when they differ from the defaults" + (f" (unknown {bad})" if bad else ""))
        head = columns.get("head", DEFAULT)
        if head not in TEXT_FILE_HEADS:
            raise DataError(f"columns head={head!r}: rows in Python train {' or '.join(TEXT_FILE_HEADS)} heads")
        text, label = tuple(columns["text"].split("+")), columns.get("label", "label")
        if len(text) > 2:
            raise DataError(f"columns text={columns['text']!r}: one text column or a pair (A+B), not {len(text)}")
        splits = _splits(data, dev)
        for split, rows in splits.items():
            missing = [c for c in (*text, label) if c not in rows[0]]
            if missing:
                raise DataError(f"{split} rows: no column {missing[0]!r}; they have {sorted(rows[0])}")
        labels = ()
        if HEADS[head].label_kind == "class":
            labels = _sorted_labels(_class_name(_cell(r, label, "train", i), f"train row {i}", label)
                                    for i, r in enumerate(splits["train"]))
            if len(labels) < 2:
                raise DataError(f"nothing to learn: every training row has label {labels[0]!r}; a classification "
                                "task needs at least two labels")
        name = f"{KIND}:{len(splits['train'])} training rows"
        return cls(name=name, head=head, labels=labels, metric=HEADS[head].metric, splits=tuple(splits),
                   rows=tuple((s, tuple(r)) for s, r in splits.items()), text_columns=text, label_column=label)

    def load(self, split: str, data_dir) -> list[dict]:
        rows = dict(self.rows).get(split)
        if rows is None:
            raise DataError(f"no {split} rows were given")
        out = []
        for i, r in enumerate(rows):
            where = f"{split} row {i}"
            texts = [text_cell(_cell(r, c, split, i), where, c) for c in self.text_columns]
            ex = {"text_a": texts[0], "label": self._label(_cell(r, self.label_column, split, i), where)}
            if len(texts) > 1:
                ex["text_b"] = texts[1]
            out.append(ex)
        return out

    def _label(self, value, where: str):
        if HEADS[self.head].label_kind == "score":
            return _score(value, where)
        name = _class_name(value, where, self.label_column)
        if name not in self.labels:
            raise DataError(f"{where}: label {name!r} is not among the training labels {list(self.labels)}")
        return self.labels.index(name)


def _cell(row: dict, column: str, split: str, i: int):
    if column not in row:
        raise DataError(f"{split} row {i}: no column {column!r}; it has {sorted(row)}")
    value = row[column]
    return None if isinstance(value, float) and math.isnan(value) else value  # pandas spells a missing cell NaN
