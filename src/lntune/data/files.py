"""Read delimited files with errors that name the file, the line and the fix."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from lntune.errors import DataError

# A default for working inside this repository; users set --data-dir or LNTUNE_DATA_DIR.
_FALLBACK_DATA_DIRS = ("../shared/data",)


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """--data-dir, then $LNTUNE_DATA_DIR, then ../shared/data; None means use the hub."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("LNTUNE_DATA_DIR"):
        return Path(os.environ["LNTUNE_DATA_DIR"])
    for d in _FALLBACK_DATA_DIRS:
        if Path(d).is_dir():
            return Path(d)
    return None


def read_rows(path: Path, required: tuple[str, ...], delimiter: str = "\t", hint: str = "") -> list[tuple[int, dict]]:
    """(line number, row dict) for every data row; header row required."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; {hint or 'restore it from the upstream release'}")
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        header = next(reader, None) or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} "
                f"(header has {header}); {hint or 'the file needs a header row naming them'}"
            )
        rows = []
        for line, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) != len(header):
                raise DataError(f"{path}:{line}: {len(fields)} fields, header has {len(header)}; {hint}".rstrip("; "))
            rows.append((line, dict(zip(header, fields))))
    if not rows:
        raise DataError(f"{path}: no data rows after the header; {hint or 'the file is truncated'}")
    return rows


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(line number, record) for every non-blank line, with errors naming the file and line."""
    rows = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{line}: not valid JSON ({e.msg}); each line must be one JSON object") from e
        missing = [k for k in required if k not in rec]
        if missing:
            raise DataError(f"{path}:{line}: missing key(s) {', '.join(repr(k) for k in missing)}")
        rows.append((line, rec))
    if not rows:
        raise DataError(f"{path}: the file is empty; restore it from the upstream release")
    return rows
