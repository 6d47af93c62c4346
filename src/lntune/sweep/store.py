"""The results store: RESULTS/records.jsonl, one JSON line per finished run, append-only.

Only the sweep driver writes it. Each record is one os.write of a whole line to a file opened with
O_APPEND, then fsync: a crash leaves at most a torn last line, which readers skip and the next
driver cuts off (rewrite to a temp file, then os.replace) before it appends. Runs that raised go to
failures.jsonl, a log that is never read to skip a run: re-running retries them. Records the user asks
to redo (`lntune sweep --redo-timing`) move to retired.jsonl, so no measurement is ever deleted.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from lntune.durable import write_atomic  # noqa: F401 - the store's writes, also imported from here
from lntune.errors import LntuneError

from lntune.spec.records import (  # noqa: F401 - readers re-exported for the sweep package
    FAILURES, RECORDS, Record, _lines, _parse, raw_records, read_failures, read_records)
RETIRED = "retired.jsonl"
STATUS = "status.json"
LOCK = ".lock"


def append_line(path: Path, obj: dict) -> None:
    """One os.write of a whole line (O_APPEND), then fsync: the line is there entirely or not at all."""
    line = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # disk full: the torn tail is repaired on the next start
            raise LntuneError(f"{path}: wrote {written} of {len(line)} bytes; free disk space and run the sweep again")
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """A results folder held by one driver: lock, repair, read, append."""

    def __init__(self, results_dir: str | Path) -> None:
        self.dir = Path(results_dir)
        self.records_path = self.dir / RECORDS
        self.failures_path = self.dir / FAILURES
        self._lock_fd: int | None = None

    def __enter__(self) -> Store:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock()
        self.repair()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def lock(self) -> None:
        # flock dies with the process, so a SIGKILLed driver never leaves the folder locked.
        fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LntuneError(
                f"{self.dir}: another lntune sweep (pid {holder}) is writing these results; "
                "wait for it to finish, or give this sweep another --results folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def repair(self) -> int:
        """Drop a torn tail, unparsable lines and repeated keys; returns how many lines went."""
        lines, torn = _lines(self.records_path)
        records, bad = _parse(lines)
        dropped = int(torn) + bad + (len(lines) - bad - len(records))
        if dropped:
            body = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
            write_atomic(self.records_path, body)
        return dropped

    def records(self) -> list[Record]:
        return read_records(self.dir)

    def retire(self, keys: set[str]) -> int:
        """Move the records of `keys` to retired.jsonl so their runs are redone; returns how many moved.

        Copy first, then rewrite records.jsonl atomically: a crash in between leaves the record in both
        files (redone later or not, never lost)."""
        records = raw_records(self.dir)  # moved byte for byte: a retired line is not migrated
        going = [r for r in records if r["key"] in keys]
        for r in going:
            append_line(self.dir / RETIRED, {**r, "retired_at": _now()})
        if going:
            body = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n"
                            for r in records if r["key"] not in keys)
            write_atomic(self.records_path, body)
        return len(going)

    def keys(self) -> set[str]:
        return {r.key for r in self.records()}

    def append(self, record: Record) -> None:
        append_line(self.records_path, record.model_dump(mode="json"))

    def append_failure(self, failure: dict) -> None:
        append_line(self.failures_path, failure)

    def write_status(self, status: dict) -> None:
        write_atomic(self.dir / STATUS, (json.dumps(status, indent=1) + "\n").encode())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
