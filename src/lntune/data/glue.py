"""GLUE tasks read from the GLUE release TSV files, or from the hub's nyu-mll/glue."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import read_rows
from lntune.data.task import Task
from lntune.errors import DataError

_HUB_SPLIT = {"train": "train", "dev": "validation"}


@dataclass(frozen=True)
class GlueTask(Task):
    folder: str = ""  # under <data dir>/glue/
    text_columns: tuple[str, ...] = ()  # one sentence or a pair
    label_column: str = "label"
    label_values: tuple[str, ...] = ()  # spellings in the TSV, in label-id order; empty: a float score
    hub_config: str = ""  # config of nyu-mll/glue

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "glue" / self.folder / f"{split}.tsv"

    def _label(self, value: str, path: Path, line: int):
        if not self.label_values:
            try:
                return float(value)
            except ValueError:
                raise DataError(f"{path}:{line}: score {value!r} is not a number") from None
        if value not in self.label_values:
            raise DataError(f"{path}:{line}: unknown label {value!r}; expected one of {', '.join(self.label_values)}")
        return self.label_values.index(value)

    def _example(self, texts: list[str], label) -> dict:
        return {"text_a": texts[0], **({"text_b": texts[1]} if len(texts) > 1 else {}), "label": label}

    def read_local(self, path: Path) -> list[dict]:
        columns = (*self.text_columns, self.label_column)
        hint = f"{self.name} files are GLUE TSV with a header naming {', '.join(columns)}"
        return [
            self._example([row[c] for c in self.text_columns], self._label(row[self.label_column], path, line))
            for line, row in read_rows(path, columns, hint=hint)
        ]

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset("nyu-mll/glue", self.hub_config, split=_HUB_SPLIT[split])
        cast = float if not self.label_values else int
        return [self._example([r[c] for c in self.text_columns], cast(r["label"])) for r in rows]


SST2 = GlueTask(
    name="sst2", head="classification", labels=("negative", "positive"), folder="SST-2",
    text_columns=("sentence",), label_values=("0", "1"), hub_config="sst2",
)
RTE = GlueTask(
    name="rte", head="classification", labels=("entailment", "not_entailment"), folder="RTE",
    text_columns=("sentence1", "sentence2"), label_values=("entailment", "not_entailment"), hub_config="rte",
)
STSB = GlueTask(
    name="stsb", head="regression", metric="pearson", folder="STS-B",
    text_columns=("sentence1", "sentence2"), label_column="score", hub_config="stsb",
)
