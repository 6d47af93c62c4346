"""A results store's records.jsonl: one JSON line per finished run, written by the sweep (lntune.sweep.store
alone appends) and read by the sweep's planner and the report. `Record` is the line's one typed definition;
lines written before it existed (version 1: no `version` key, `picks_lr` only when true, optional keys absent)
load through `migrate`, and a line this version writes is refused if it holds a key `Record` does not know.

A torn last line (a sweep killed mid-write) is skipped with a warning; a key seen twice keeps its first record."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer

from lntune.errors import LntuneError, LntuneWarning
from lntune.spec.results import Counts
from lntune.spec.run import RunSpec

RECORDS = "records.jsonl"
FAILURES = "failures.jsonl"
VERSION = 2  # what this version writes; 1 = lines without a `version` key (committed stores before issue 22)
Number = int | float  # int stays int (a step, an epoch): a report prints what was measured


class RecordKeyWarning(DeprecationWarning):
    """A record read like the dict it was before version 2 (r["score"]); lntune's own code never does."""


class RecordError(LntuneError):
    """A records.jsonl line that is not a record this version can read."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sizes(_Part):
    """Examples in each split the run read."""

    train: int
    val: int
    test: int


class Efficiency(_Part):
    """A timing run's measurements (report/efficiency)."""

    train_step_seconds: Number
    infer_batch_seconds: Number
    peak_memory_mb: Number | None
    batch_size: int
    seq_len: int
    device: str
    threads: int


class Change(_Part):
    """Normalised L1 change after training: per (component, layer) and per LN (module, term, layer)."""

    cells: list[tuple[str, int | None, float]]
    ln: list[tuple[str, str, int | None, float]]


class Record(_Part):
    """One finished run of a sweep, as records.jsonl holds it.

    >>> from lntune import Record
    >>> from lntune.spec.records import read_records
    >>> records = read_records("docs/results/paper_cpu")  # doctest: +SKIP
    >>> [(r.row, r.task, r.seed, r.score) for r in records if r.is_reported][:1]  # doctest: +SKIP
    [('LN', 'sst2', 1, 0.79...)]
    >>> sorted(Record.model_fields)[:4]
    ['best_seconds', 'change', 'commit', 'counts']
    """

    key: str  # sha256 of `spec`: the run's identity
    spec: RunSpec  # what the key hashes
    sweep: str  # the sweep config's name
    row: str  # table row label
    group: str  # the table the run feeds; "efficiency" for timing runs
    task: str
    task_kind: str  # nlu | nlg
    metric: str  # the task's main metric
    method: str
    model: str
    lr: float
    lr_rank: int  # position of lr in the method's priority list
    seed: int
    val: dict[str, Number] | None  # validation metrics of the kept state, with its step and epoch
    val_score: float | None  # the number the lr choice maximises (sweep/driver.val_score)
    val_metric: str | None = None  # the metric val_score stands for ("-loss" when negated)
    test: dict[str, Number] | None  # metrics on the reported split
    score: float | None  # test[metric]; None for a timing run
    counts: Counts
    steps: int
    train_seconds: float
    efficiency: Efficiency | None = None  # timing runs only
    picks_lr: bool = False  # a run of the sweep's lr_seed: it chose the lr of the other seeds and is not reported
    majority: dict[str, float] | None = None  # majority-class score per split, classification only
    change: Change | None = None  # methods whose change is recorded (analyse/change)
    best_seconds: float | None = None  # training time until the kept state
    sizes: Sizes | None = None
    curve: list[dict[str, Number]] | None = None  # budget curve: metrics after each listed epoch
    finished_at: str
    machine: str | None  # the worker's platform line
    in_flight: int | None = None  # most runs the sweep had at once while this ran (itself too); None: not recorded
    load: float | None = None  # the machine's mean 1-minute load average while this ran, other work included
    commit: str | None  # lntune's git commit, when run from a checkout
    version: Literal[2] = VERSION

    @property
    def is_timing(self) -> bool:
        """A timing run (efficiency table), not a training run with scores."""
        return self.spec.kind == "efficiency" or self.group == "efficiency"

    @property
    def is_reported(self) -> bool:
        """A scored training run a table reports: not timing, and not an lr_seed run (`picks_lr`)."""
        return not self.is_timing and self.score is not None and not self.picks_lr

    @property
    def options(self) -> dict[str, Any]:
        """The method's options as the spec holds them."""
        return self.spec.options

    @field_serializer("spec")
    def _spec_as_keyed(self, spec: RunSpec) -> dict[str, Any]:
        return spec.as_json()  # the keys the key hashed, no others

    def __getitem__(self, name: str) -> Any:
        # Records were dicts before version 2; user code reading r["score"] keeps working, with a note.
        warnings.warn(f"records are lntune.spec.records.Record objects: read r.{name}, not r[{name!r}]",
                      RecordKeyWarning, stacklevel=2)
        return self.model_dump()[name]


def migrate(raw: dict) -> dict:
    """A version-1 line (no `version`) as version 2: the same keys, `picks_lr` explicit, the version stated.
    Every optional key absent in version 1 has the default that version 1's readers assumed."""
    if raw.get("version", 1) == VERSION:
        return raw
    if raw.get("version", 1) != 1:
        raise RecordError(f"record version {raw['version']!r} is newer than this lntune reads (up to {VERSION}); "
                          "upgrade lntune")
    return {**raw, "picks_lr": bool(raw.get("picks_lr", False)), "version": VERSION}


def parse_record(raw: dict, where: str = RECORDS) -> Record:
    """One line's object as a Record (migrated when older), or RecordError naming `where` and the field."""
    try:
        return Record.model_validate(migrate(raw))
    except ValidationError as e:
        first = e.errors()[0]
        at = ".".join(str(p) for p in first["loc"])
        raise RecordError(f"{where}: record {str(raw.get('key', '?'))[:12]}: {at}: {first['msg']}") from None


def _parse(lines: list[bytes]) -> tuple[list[dict], int]:
    """(complete records as parsed JSON, number of bad lines); the first record of a key wins."""
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


def raw_records(results_dir: str | Path) -> list[dict]:
    """The complete lines of a results folder as parsed JSON, unmigrated (the store rewrites them byte for byte).

    A torn (unterminated or unparsable) line is skipped with a warning; a key seen twice keeps its first."""
    lines, torn = _lines(Path(results_dir) / RECORDS)
    records, bad = _parse(lines)
    if torn or bad:
        warnings.warn(f"{Path(results_dir) / RECORDS}: skipped {int(torn) + bad} incomplete line(s) "
                      "(a sweep was interrupted mid-write; the next lntune sweep repairs the file)", LntuneWarning,
                      stacklevel=3)
    return records


def read_records(results_dir: str | Path) -> list[Record]:
    """The finished runs of a results folder, in the order they finished, migrated to this version's Record."""
    where = str(Path(results_dir) / RECORDS)
    return [parse_record(raw, where) for raw in raw_records(results_dir)]


def read_failures(results_dir: str | Path) -> list[dict]:
    lines, _ = _lines(Path(results_dir) / FAILURES)
    out = []
    for raw in lines:
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out
