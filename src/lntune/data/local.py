"""Users' own files: CSV, TSV or JSONL with named text columns and a label column.

    --task 'local:train=my/train.csv,dev=my/dev.csv,text=premise+hypothesis,label=label'
    add head=regression for a numeric label; the classification label set is read from the
    training file (sorted) and recorded in the skin.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import read_rows
from lntune.data.files import read_jsonl
from lntune.data.task import Task
from lntune.errors import DataError

_KEYS = {"train", "dev", "test", "text", "label", "head"}


def _records(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict]]:
    if not path.exists():
        raise DataError(f"{path}: file not found (from the local: task spec)")
    if path.suffix == ".jsonl":
        return [(n, {k: str(v) if k in columns[:-1] else v for k, v in r.items()}) for n, r in read_jsonl(path, columns)]
    if path.suffix in (".csv", ".tsv"):
        return read_rows(path, columns, delimiter="\t" if path.suffix == ".tsv" else ",")
    raise DataError(f"{path}: unsupported extension {path.suffix!r}; use .csv, .tsv or .jsonl")


def _sorted_labels(values) -> tuple[str, ...]:
    labels = {str(v) for v in values}
    try:
        return tuple(sorted(labels, key=float))
    except ValueError:
        return tuple(sorted(labels))


@dataclass(frozen=True)
class LocalTask(Task):
    files: tuple[tuple[str, str], ...] = ()  # (split, path)
    text_columns: tuple[str, ...] = ()
    label_column: str = "label"

    @classmethod
    def from_spec(cls, spec: str) -> "LocalTask":
        fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
        bad = set(fields) - _KEYS
        if bad or "train" not in fields or "text" not in fields:
            raise DataError(
                f"task 'local:{spec}': write local:train=PATH,dev=PATH,text=COL[+COL],label=COL[,head=regression]"
                + (f" (unknown keys {sorted(bad)})" if bad else "")
            )
        head = fields.get("head", "classification")
        if head not in ("classification", "regression"):
            raise DataError(f"task 'local:{spec}': head must be classification or regression")
        files = tuple((s, fields[s]) for s in ("train", "dev", "test") if s in fields)
        text, label = tuple(fields["text"].split("+")), fields.get("label", "label")
        if len(text) > 2:
            raise DataError(f"task 'local:{spec}': one text column or a pair (text=A+B), not {len(text)}")
        labels = ()
        if head == "classification":
            labels = _sorted_labels(r[label] for _, r in _records(Path(fields["train"]), (*text, label)))
        metric = "accuracy" if head == "classification" else "pearson"
        return cls(name=f"local:{spec}", head=head, labels=labels, metric=metric, splits=tuple(s for s, _ in files),
                   files=files, text_columns=text, label_column=label)

    def local_path(self, data_dir, split: str) -> Path:
        return Path(dict(self.files)[split])

    def load(self, split: str, data_dir) -> list[dict]:
        if split not in self.splits:
            raise DataError(f"task {self.name}: no {split} file given; add {split}=PATH to the spec")
        return self.read_local(self.local_path(None, split))

    def _label(self, value, path: Path, line: int):
        if self.head == "regression":
            try:
                return float(value)
            except (TypeError, ValueError):
                raise DataError(f"{path}:{line}: label {value!r} is not a number (head=regression)") from None
        if str(value) not in self.labels:
            raise DataError(f"{path}:{line}: label {value!r} is not among the training labels {list(self.labels)}")
        return self.labels.index(str(value))

    def read_local(self, path: Path) -> list[dict]:
        out = []
        for line, r in _records(path, (*self.text_columns, self.label_column)):
            texts = [r[c] for c in self.text_columns]
            ex = {"text_a": texts[0], "label": self._label(r[self.label_column], path, line)}
            if len(texts) > 1:
                ex["text_b"] = texts[1]
            out.append(ex)
        return out
