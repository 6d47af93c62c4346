"""A task knows where its data lives, which head it needs and which metric ranks runs."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from lntune.errors import DataError


@dataclass(frozen=True)
class Task:
    """Subclasses implement `read_local` (upstream files) and `read_hub` (datasets)."""

    name: str
    head: str  # classification | regression | causal-lm
    labels: tuple[str, ...] = ()  # class names; the index is the label id
    metric: str = "accuracy"  # main metric on the dev split (its direction: lntune.spec.metrics)
    splits: tuple[str, ...] = ("train", "dev")

    def local_path(self, data_dir: Path, split: str) -> Path:
        raise NotImplementedError

    def read_local(self, path: Path) -> list[dict]:
        raise NotImplementedError

    def read_hub(self, split: str) -> list[dict]:
        raise NotImplementedError

    def load(self, split: str, data_dir: Path | None) -> list[dict]:
        """Examples of `split` from the data directory, else from the hub."""
        if split not in self.splits:
            raise DataError(f"task {self.name}: no split {split!r}; it has {', '.join(self.splits)}")
        path = self.local_path(data_dir, split) if data_dir else None  # None: a hub-only task
        if path is not None and path.exists():
            return self.read_local(path)
        try:
            return self.read_hub(split)
        except Exception as e:  # offline, or the hub changed: say where the files were expected
            if path is not None:
                where = f"{path} does not exist"
            elif data_dir is None:
                where = "no data directory is set (--data-dir / LNTUNE_DATA_DIR)"
            else:
                where = "it has no offline files"
            raise DataError(f"task {self.name}, split {split}: {where}, and the hub copy failed: {e}") from e


def subset(examples: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset that keeps the original order."""
    if not limit or limit >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in keep]
