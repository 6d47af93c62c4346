"""A task knows where its data lives, which head it needs and which metric ranks runs."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from lntune.errors import DataError
from lntune import offline as _offline


@dataclass(frozen=True)
class Task:
    """Subclasses implement `read_local` (upstream files) and `read_hub` (datasets)."""

    name: str
    head: str  # a kind in lntune.heads.HEADS
    labels: tuple[str, ...] = ()  # class names; the index is the label id
    metric: str = "accuracy"  # main metric on the dev split (its direction: lntune.spec.metrics)
    splits: tuple[str, ...] = ("train", "dev")
    gen_metrics: tuple[str, ...] = ()  # what its generations are scored by (BLEU, ROUGE-L, ...); () if it has none

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        """(Hub dataset id[, config]) that read_hub loads; () for tasks with no Hub copy (users' files)."""
        return ()

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
        where = self._missing(path, data_dir, split)
        offline = _offline.hub_offline()  # looked up at call time: tests stand a Hub in
        if offline:  # datasets would retry for half a minute before saying the same
            raise DataError(f"task {self.name}, split {split}: {where}, and the Hub cannot be reached ({offline}); "
                            f"{self._fix(path, data_dir, split)}")
        try:
            return self.read_hub(split)
        except Exception as e:  # the hub changed, or failed midway: say where the files were expected
            raise DataError(f"task {self.name}, split {split}: {where}, and the hub copy failed: {e}") from e

    def _missing(self, path: Path | None, data_dir: Path | None, split: str) -> str:
        if path is not None:
            return f"{path} does not exist"
        if data_dir is None:
            return "no data directory is set (--data-dir / LNTUNE_DATA_DIR)"
        return "it has no offline files"

    def _fix(self, path: Path | None, data_dir: Path | None, split: str) -> str:
        """What to do offline: where the upstream files go, and how to point lntune at them."""
        try:
            layout = self.local_path(Path("DIR"), split)
        except (NotImplementedError, DataError):
            layout = None
        if layout is None:  # a hub-only task
            return "this task has no offline files; choose another task, or run where the Hub can be reached"
        return (f"put the upstream files where {layout} is one of them (the layout of ../shared/data) and pass "
                "--data-dir DIR or set LNTUNE_DATA_DIR=DIR" + ("" if data_dir is None else f" (DIR is now {data_dir})"))



def subset(examples: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset that keeps the original order."""
    if not limit or limit >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in keep]
