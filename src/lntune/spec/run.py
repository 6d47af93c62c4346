"""What one sweep run is: `RunSpec`, the mapping whose sha256 is the run's key. The planner builds it
(lntune.sweep.grid), workers run it (lntune.sweep.run), and every record carries it (lntune.spec.records).

A key must never change under a committed record, so a spec keeps exactly the keys it was built or read with
(`exclude_unset`: `curve` and `efficiency` appear only on the runs that have them), numbers keep their JSON type
(int stays int), and mappings owned by other definitions (the method's options, the TrainConfig fields the key
holds) pass through as they are."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Number = int | float


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FisherSpec(_Part):
    """The Fisher information a mask is chosen from (lntune.analyse.fisher)."""

    examples: int
    batch_size: int
    max_length: int
    seed: int
    tasks: list[str]  # one task (individual) or the pool (global, cv)
    data: dict[str, str | None]  # task -> data fingerprint


class MaskSpec(_Part):
    """A mask over the LN parameters (lntune.spec.masks kinds)."""

    kind: str
    fraction: Number
    seed: int | None = None  # random masks
    fisher: FisherSpec | None = None  # Fisher-selected masks


class GenerationSpec(_Part):
    limit: int  # dev inputs to generate for (-1: all)
    num_beams: int


class TimingSpec(_Part):
    """A timing run's settings (lntune.sweep.efficiency)."""

    batch_size: int
    seq_len: int
    steps: int
    warmup: int
    threads: int
    repeat: int | None = None  # absent on the first repeat, so adding repeats keeps its key


class RunSpec(_Part):
    """One run of a sweep; its key is the sha256 of its canonical JSON."""

    kind: Literal["train", "efficiency"]
    task: str
    model: str
    method: str
    options: dict[str, Any]  # the method's options (lntune.method), as the planner filled them in
    mask: MaskSpec | None
    train: dict[str, Any]  # the TrainConfig fields in the key (lntune.spec.train, sweep=key)
    train_limit: int | None
    val_limit: Number | None
    eval_limit: int | None
    test_split: str | None
    generation: GenerationSpec | None
    data: str | None  # the task's data fingerprint
    efficiency: TimingSpec | None = None  # timing runs only
    curve: list[int] | None = None  # budget-curve runs only

    def as_json(self) -> dict[str, Any]:
        """The spec as the key hashes it and records hold it: the keys it was made with, no others."""
        return self.model_dump(mode="json", exclude_unset=True)

    def key(self) -> str:
        return hashlib.sha256(canonical(self.as_json())).hexdigest()


def canonical(obj: Any) -> bytes:
    """Sorted keys, no spaces, ASCII, no NaN: the bytes a key hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
