"""CommitmentBank (SuperGLUE). Its test labels are hidden, so val.jsonl is the test split and a
fixed, seeded share of train.jsonl is the dev split (the same for every training seed)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import read_jsonl
from lntune.data.task import Task
from lntune.errors import DataError

_FILES = {"train": "train.jsonl", "test": "val.jsonl"}
_HUB_SPLIT = {"train": "train", "test": "validation"}


@dataclass(frozen=True)
class CB(Task):
    name: str = "cb"
    head: str = "classification"
    labels: tuple[str, ...] = ("entailment", "contradiction", "neutral")
    metric: str = "accuracy"
    splits: tuple[str, ...] = ("train", "dev", "test")
    dev_size: int = 25  # carved from train.jsonl
    dev_seed: int = 0  # fixed so every run is scored on the same dev rows

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "superglue" / "CB" / _FILES["test" if split == "test" else "train"]

    def read_local(self, path: Path) -> list[dict]:
        out = []
        for line, rec in read_jsonl(path, ("premise", "hypothesis", "label")):
            if rec["label"] not in self.labels:
                raise DataError(f"{path}:{line}: unknown label {rec['label']!r}; expected one of {', '.join(self.labels)}")
            out.append({"text_a": rec["premise"], "text_b": rec["hypothesis"], "label": self.labels.index(rec["label"])})
        return out

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        return ('aps/super_glue', 'cb')

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset(*self.hub_dataset, split=_HUB_SPLIT["test" if split == "test" else "train"])
        return [{"text_a": r["premise"], "text_b": r["hypothesis"], "label": int(r["label"])} for r in rows]

    def load(self, split: str, data_dir: Path | None) -> list[dict]:
        if split not in self.splits:
            raise DataError(f"task {self.name}: no split {split!r}; it has {', '.join(self.splits)}")
        if split == "test":
            return super().load("test", data_dir)
        rows = super().load("train", data_dir)
        dev = set(random.Random(self.dev_seed).sample(range(len(rows)), self.dev_size))
        return [r for i, r in enumerate(rows) if (i in dev) == (split == "dev")]
