"""GLUE tasks read from the GLUE release TSV files, or from the hub's nyu-mll/glue."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import read_rows
from lntune.data.task import Task
from lntune.errors import DataError



@dataclass(frozen=True)
class GlueTask(Task):
    folder: str = ""  # under <data dir>/glue/
    text_columns: tuple[str, ...] = ()  # one sentence or a pair
    label_column: str = "label"
    label_values: tuple[str, ...] = ()  # spellings in the TSV, in label-id order; empty: a float score
    hub_config: str = ""  # config of nyu-mll/glue
    hub_name: str = "nyu-mll/glue"
    dev_file: str = "dev"  # MNLI names its dev sets dev_matched / dev_mismatched
    hub_dev: str = "validation"
    hub_columns: tuple[str, ...] = ()  # the hub's names for text_columns, when they differ

    def local_path(self, data_dir: Path, split: str) -> Path | None:
        if not self.folder:
            return None  # hub only
        return data_dir / "glue" / self.folder / f"{self.dev_file if split == 'dev' else split}.tsv"

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

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        return (self.hub_name, self.hub_config) if self.hub_config else (self.hub_name,)

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset(*self.hub_dataset, split={"train": "train", "dev": self.hub_dev}[split])
        columns = self.hub_columns or self.text_columns
        if not self.label_values:
            return [self._example([r[c] for c in columns], float(r["label"])) for r in rows]
        # -1 marks unlabelled rows (GLUE test sets, SNLI pairs without a gold label)
        return [self._example([r[c] for c in columns], int(r["label"])) for r in rows if r["label"] >= 0]


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

# Hub-only here (not in the offline data); the GLUE release TSVs are read when present.
COLA = GlueTask(
    name="cola", head="classification", labels=("unacceptable", "acceptable"), metric="mcc",
    text_columns=("sentence",), label_values=("0", "1"), hub_config="cola",
)
MRPC = GlueTask(
    name="mrpc", head="classification", labels=("not_equivalent", "equivalent"), metric="f1", folder="MRPC",
    text_columns=("#1 String", "#2 String"), label_column="Quality", label_values=("0", "1"), hub_config="mrpc",
    hub_columns=("sentence1", "sentence2"),
)
QQP = GlueTask(
    name="qqp", head="classification", labels=("not_duplicate", "duplicate"), metric="f1", folder="QQP",
    text_columns=("question1", "question2"), label_column="is_duplicate", label_values=("0", "1"), hub_config="qqp",
)
QNLI = GlueTask(
    name="qnli", head="classification", labels=("entailment", "not_entailment"), folder="QNLI",
    text_columns=("question", "sentence"), label_values=("entailment", "not_entailment"), hub_config="qnli",
)
_MNLI = dict(
    head="classification", labels=("entailment", "neutral", "contradiction"), folder="MNLI",
    text_columns=("sentence1", "sentence2"), label_column="gold_label",
    label_values=("entailment", "neutral", "contradiction"), hub_config="mnli", hub_columns=("premise", "hypothesis"),
)
MNLI = GlueTask(name="mnli", dev_file="dev_matched", hub_dev="validation_matched", **_MNLI)
MNLI_MM = GlueTask(name="mnli_mm", dev_file="dev_mismatched", hub_dev="validation_mismatched", **_MNLI)
SNLI = GlueTask(
    name="snli", head="classification", labels=("entailment", "neutral", "contradiction"),
    text_columns=("premise", "hypothesis"), label_values=("entailment", "neutral", "contradiction"),
    hub_name="stanfordnlp/snli",
)
