"""Users' own files: CSV, TSV or JSONL with named text columns and a label column.

    --task 'local:train=my/train.csv,dev=my/dev.csv,text=premise+hypothesis,label=label'
    add head=regression for a numeric label; the classification label set is read from the
    training file (sorted) and recorded in the skin.
    header=none    a CSV/TSV without a header row: columns by 0-based index (text=3,label=1; text=0+2)
    encoding=ENC   files saved in another encoding (cp1252, latin-1, utf-16, ...); a UTF-8 BOM is dropped
"""
from __future__ import annotations

from typing import ClassVar

import math
from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import clip, codec_for, read_jsonl, read_rows, spec_encoding_fix
from lntune.data.task import Task
from lntune.errors import DataError
from lntune.heads import DEFAULT, HEADS

# Heads whose label is one value per row of a text file: a class name or a number.
TEXT_FILE_HEADS = tuple(h.name for h in HEADS.values() if h.label_kind in ("class", "score"))
_KEYS = {"train", "dev", "test", "text", "label", "head", "header", "encoding"}
_USAGE = ("write local:train=PATH,dev=PATH,text=COL[+COL],label=COL"
          "[,head=regression][,header=none][,encoding=ENC]")
_JSONL_HINT = "local: JSONL files hold one JSON object per line"
_HINT = "local: files start with a header row naming the columns (without one, add header=none and number them)"
_JSON_KINDS = {list: "a JSON array", dict: "a JSON object", bool: "a JSON true/false"}


def read_table(path: Path, columns: tuple[str, ...], header: bool, encoding: str, spec: str) -> list[tuple[int, dict]]:
    """(line, row) of a users' CSV/TSV/JSONL file named by a local: spec; JSONL values keep their JSON types."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "file not found"
        raise DataError(f"{path}: {what} (from the local: task spec)")
    fix = spec_encoding_fix(f"local:{spec}")
    if path.suffix == ".jsonl":
        if not header:
            raise DataError(f"{path}: header=none applies to CSV/TSV files; JSONL records name their keys")
        return read_jsonl(path, columns, hint=_JSONL_HINT, encoding=encoding, fix=fix)
    if path.suffix in (".csv", ".tsv"):
        delimiter = "\t" if path.suffix == ".tsv" else ","
        hint = _HINT if header else "header=none reads every line as data"
        return read_rows(path, columns, delimiter, hint, header=header, encoding=encoding, fix=fix)
    raise DataError(f"{path}: unsupported extension {path.suffix!r}; use .csv, .tsv or .jsonl")


def _records(path: Path, columns: tuple[str, ...], header: bool, encoding: str, spec: str) -> list[tuple[int, dict]]:
    rows = read_table(path, columns, header, encoding, spec)
    if path.suffix != ".jsonl":
        return rows
    return [(n, {**r, **{c: text_cell(r[c], f"{path}:{n}", c) for c in columns[:-1]}}) for n, r in rows]


def text_cell(value, where: str, column: str) -> str:
    """A JSONL text cell as a string; numbers are read as their spelling, null is refused."""
    if value is None:
        raise DataError(f"{where}: text {column!r} is null; give a string, or drop the line")
    if type(value) in _JSON_KINDS:
        raise DataError(f"{where}: text {column!r} is {_JSON_KINDS[type(value)]}, not a string")
    return _encodable(str(value), where, f"text {column!r}")


def _encodable(text: str, where: str, what: str) -> str:
    # JSON escapes can spell a lone surrogate (\ud800), which no tokenizer or UTF-8 file can hold
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{where}: {what} holds a lone surrogate escape (\\ud800-\\udfff); fix the JSON") from None
    return text


def _class_name(value, where: str, column: str) -> str:
    """A classification label as the string the label set holds; a missing label is refused, not learned."""
    if isinstance(value, bool):  # str(True) would make a class "True" that no CSV or string label matches
        raise DataError(f"{where}: label {column!r} is JSON {str(value).lower()}; write the class as a string "
                        f'("{str(value).lower()}") or a number')
    if value is None or type(value) in _JSON_KINDS or not str(value).strip():
        what = "null" if value is None else _JSON_KINDS.get(type(value), "empty")
        raise DataError(f"{where}: label {column!r} is {what}; every row needs a label")
    text = str(value)
    if text != text.strip():  # "1 " and "1" would be two classes
        raise DataError(f"{where}: label {clip(text)} has spaces around it; write {clip(text.strip())}")
    number = _number(text)
    if number is not None and not math.isfinite(number):
        raise DataError(f"{where}: label {clip(text)} is not a class (NaN/inf); fix it or drop the row")
    return _encodable(text, where, f"label {column!r}")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _score(value, where: str) -> float:
    """A regression label; NaN/inf are refused here, or training fails later for an unrelated-looking reason."""
    try:
        if isinstance(value, bool):  # float(True) is 1.0: a flag is not a score
            raise TypeError
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: label {clip(value)} is not a number (head=regression)") from None
    if not math.isfinite(score):
        raise DataError(f"{where}: label {clip(value)} is not a finite number (head=regression); "
                        "fix it or drop the row")
    return score


def _sorted_labels(values) -> tuple[str, ...]:
    """One order for any label set, whatever Python's hash seed: all-numeric sets by value (ties, like "1" and
    "1.0", by their text), any other set by text."""
    labels = set(values)
    numbers = {label: _number(label) for label in labels}
    if all(n is not None for n in numbers.values()):
        return tuple(sorted(labels, key=lambda label: (numbers[label], label)))
    return tuple(sorted(labels))


def _columns(spec: str, fields: dict[str, str], header: bool) -> tuple[tuple[str, ...], str]:
    text, label = tuple(fields["text"].split("+")), fields.get("label", "label")
    if len(text) > 2:
        raise DataError(f"task 'local:{spec}': one text column or a pair (text=A+B), not {len(text)}")
    if not header and not all(c.isdigit() for c in (*text, label)):
        raise DataError(f"task 'local:{spec}': with header=none, text= and label= are 0-based column numbers "
                        "(text=3,label=1; text=0+2 for a pair)")
    return text, label


@dataclass(frozen=True)
class LocalTask(Task):

    usage: ClassVar[str] = _USAGE.removeprefix("write ")  # how the spec is written (lntune tasks)
    files: tuple[tuple[str, str], ...] = ()  # (split, path)
    text_columns: tuple[str, ...] = ()
    label_column: str = "label"
    header: bool = True  # False: header=none, columns named by 0-based index
    encoding: str = "utf-8"

    @classmethod
    def from_spec(cls, spec: str) -> "LocalTask":
        fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
        bad = set(fields) - _KEYS
        if bad or "train" not in fields or "text" not in fields:
            raise DataError(f"task 'local:{spec}': {_USAGE}" + (f" (unknown keys {sorted(bad)})" if bad else ""))
        head = fields.get("head", DEFAULT)
        if head not in TEXT_FILE_HEADS:
            raise DataError(f"task 'local:{spec}': head must be {' or '.join(TEXT_FILE_HEADS)}")
        if fields.get("header", "first") not in ("none", "first"):
            raise DataError(f"task 'local:{spec}': header must be none (no header row) or first (the default)")
        header, encoding = fields.get("header") != "none", fields.get("encoding", "utf-8")
        codec_for(encoding, f"task 'local:{spec}'")
        files = tuple((s, fields[s]) for s in ("train", "dev", "test") if s in fields)
        text, label = _columns(spec, fields, header)
        labels = ()
        if HEADS[head].label_kind == "class":
            train = Path(fields["train"])
            rows = _records(train, (*text, label), header, encoding, spec)
            labels = _sorted_labels(_class_name(r[label], f"{train}:{n}", label) for n, r in rows)
            if len(labels) < 2:
                raise DataError(f"nothing to learn: every row of {train} has label {clip(labels[0])}; "
                                "a classification training file needs at least two labels")
        metric = HEADS[head].metric
        return cls(name=f"local:{spec}", head=head, labels=labels, metric=metric, splits=tuple(s for s, _ in files),
                   files=files, text_columns=text, label_column=label, header=header, encoding=encoding)

    def local_path(self, data_dir, split: str) -> Path:
        return Path(dict(self.files)[split])

    def load(self, split: str, data_dir) -> list[dict]:
        if split not in self.splits:
            raise DataError(f"task {self.name}: no {split} file given; add {split}=PATH to the spec")
        return self.read_local(self.local_path(None, split))

    def _label(self, value, path: Path, line: int):
        where = f"{path}:{line}"
        if HEADS[self.head].label_kind == "score":
            return _score(value, where)
        name = _class_name(value, where, self.label_column)
        if name not in self.labels:
            known = clip(list(self.labels), 200)
            raise DataError(f"{where}: label {clip(value)} is not among the training labels {known}")
        return self.labels.index(name)

    def read_local(self, path: Path) -> list[dict]:
        out = []
        spec = self.name.partition(":")[2]
        for line, r in _records(path, (*self.text_columns, self.label_column), self.header, self.encoding, spec):
            texts = [r[c] for c in self.text_columns]
            ex = {"text_a": texts[0], "label": self._label(r[self.label_column], path, line)}
            if len(texts) > 1:
                ex["text_b"] = texts[1]
            out.append(ex)
        return out
