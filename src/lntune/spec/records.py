"""Reading a results store's records.jsonl (one JSON line per finished run), shared by the sweep that writes it
(lntune.sweep.store) and the report that reads it. A torn last line (a sweep killed mid-write) is skipped with a
warning; a key seen twice keeps its first record."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

RECORDS = "records.jsonl"
FAILURES = "failures.jsonl"


def _parse(lines: list[bytes]) -> tuple[list[dict], int]:
    """(complete records, number of bad lines); the first record of a key wins."""
    out, seen, bad = [], set(), 0
    for raw in lines:
        try:
            rec = json.loads(raw)
        except ValueError:
            bad += 1
            continue
        if not isinstance(rec, dict) or "key" not in rec:
            bad += 1
        elif rec["key"] not in seen:
            seen.add(rec["key"])
            out.append(rec)
    return out, bad


def _lines(path: Path) -> tuple[list[bytes], bool]:
    """Newline-terminated lines of `path`, and whether an unterminated tail followed them."""
    if not path.exists():
        return [], False
    data = path.read_bytes()
    complete, _, tail = data.rpartition(b"\n")
    return [line for line in complete.split(b"\n") if line.strip()], bool(tail.strip())


def read_records(results_dir: str | Path) -> list[dict]:
    """The complete records of a results folder, in the order they finished.

    A torn (unterminated or unparsable) line is skipped with a warning; a key seen twice keeps its
    first record."""
    lines, torn = _lines(Path(results_dir) / RECORDS)
    records, bad = _parse(lines)
    if torn or bad:
        warnings.warn(f"{Path(results_dir) / RECORDS}: skipped {int(torn) + bad} incomplete line(s) "
                      "(a sweep was interrupted mid-write; the next lntune sweep repairs the file)", stacklevel=2)
    return records


def read_failures(results_dir: str | Path) -> list[dict]:
    lines, _ = _lines(Path(results_dir) / FAILURES)
    out = []
    for raw in lines:
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out
