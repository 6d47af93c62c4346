"""Synthetic records in the sweep's contract format, built from known numbers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lntune.spec.records import Record, parse_record


def record(task="sst2", method="ln", row=None, group="main", lr=1e-2, lr_rank=0, seed=1, score=0.8, val=0.8,
           metric="accuracy", task_kind="nlu", model="minilm", options=None, mask=None, tuned_pct=0.04,
           test=None, sweep="unit", kind="train", efficiency=None, **extra) -> Record:
    spec = {"task": task, "model": model, "method": method, "options": options or {}, "mask": mask,
            "train": {"lr": lr, "seed": seed}, "train_limit": 100, "val_limit": 20, "eval_limit": None,
            "kind": kind, "test_split": None, "generation": None, "data": None}
    # rows of one method (ablations) share a spec here: the row keeps their keys apart
    key = hashlib.sha256(json.dumps([spec, row, group], sort_keys=True).encode()).hexdigest()
    out = {
        "key": key, "spec": spec, "sweep": sweep, "row": row or method, "group": group, "task": task,
        "task_kind": task_kind, "metric": metric, "method": method, "model": model, "lr": lr, "lr_rank": lr_rank, "seed": seed,
        "val": {metric: val}, "val_score": val, "test": test if test is not None else {metric: score},
        "score": score, "counts": {"tuned": 10, "head": 2, "base": 1000, "tuned_pct": tuned_pct,
                                   "tuned_with_head_pct": tuned_pct + 0.01},
        "steps": 10, "train_seconds": 1.0, "efficiency": efficiency,
        "finished_at": "2026-01-01T00:00:00Z", "machine": "x86_64, 2 CPUs, Linux", "commit": "abc123",
    }
    if kind == "efficiency":
        out.update(val=None, val_score=None, test=None, score=None, group="efficiency")
    out.update(extra)
    return parse_record(out)


def efficiency(method, row=None, train=0.4, infer=0.1, mem=1000.0, task="sst2", model="minilm") -> Record:
    return record(task=task, method=method, row=row, model=model, kind="efficiency", efficiency={
        "train_step_seconds": train, "infer_batch_seconds": infer, "peak_memory_mb": mem, "batch_size": 32,
        "seq_len": 128, "device": "cpu", "threads": 2})


def write_store(folder: Path, records: list[Record]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_text("".join(json.dumps(r.model_dump(mode="json")) + "\n" for r in records))
    return folder


def edit(r: Record, **changes) -> Record:
    """`r` with some fields replaced, validated again (records are frozen)."""
    return parse_record({**r.model_dump(mode="json"), **changes})
