"""GLUE tasks read from the GLUE release TSV files, or from the hub's nyu-mll/glue."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import read_rows
from lntune.data.task import Task
from lntune.errors import DataError

_HUB_SPLIT = {"train": "train", "dev": "validation"}


@dataclass(frozen=True)
class SST2(Task):
    name: str = "sst2"
    head: str = "classification"
    labels: tuple[str, ...] = ("negative", "positive")

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "glue" / "SST-2" / f"{split}.tsv"

    def read_local(self, path: Path) -> list[dict]:
        hint = "SST-2 files are GLUE TSV: a header 'sentence<TAB>label', labels 0 or 1"
        out = []
        for line, row in read_rows(path, ("sentence", "label"), hint=hint):
            if row["label"] not in ("0", "1"):
                raise DataError(f"{path}:{line}: unknown label {row['label']!r}; expected 0 or 1")
            out.append({"text_a": row["sentence"], "label": int(row["label"])})
        return out

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset("nyu-mll/glue", "sst2", split=_HUB_SPLIT[split])
        return [{"text_a": r["sentence"], "label": int(r["label"])} for r in rows]
