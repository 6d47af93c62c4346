"""SICK: one TSV whose SemEval_set column gives the splits (TRAIN / TRIAL / TEST).

`sick` is 3-way entailment; `sick_relatedness` regresses the 1..5 relatedness score."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import read_rows
from lntune.data.task import Task
from lntune.errors import DataError

_SETS = {"train": "TRAIN", "dev": "TRIAL", "test": "TEST"}
_COLUMNS = ("sentence_A", "sentence_B", "entailment_label", "relatedness_score", "SemEval_set")


@dataclass(frozen=True)
class Sick(Task):
    name: str = "sick"
    head: str = "classification"
    labels: tuple[str, ...] = ("ENTAILMENT", "NEUTRAL", "CONTRADICTION")
    splits: tuple[str, ...] = ("train", "dev", "test")

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "sick" / "SICK.txt"

    def load(self, split: str, data_dir: Path | None) -> list[dict]:
        rows = super().load(split, data_dir)  # the whole file; keep this split's rows
        return [{k: v for k, v in r.items() if k != "set"} for r in rows if r["set"] == _SETS[split]]

    def _label(self, row: dict, path: Path, line: int):
        value = row["entailment_label"]
        if value not in self.labels:
            raise DataError(f"{path}:{line}: unknown entailment_label {value!r}; expected one of {', '.join(self.labels)}")
        return self.labels.index(value)

    def read_local(self, path: Path) -> list[dict]:
        out = []
        for line, row in read_rows(path, _COLUMNS, hint="SICK.txt is the tab-separated release with a header"):
            subset = row["SemEval_set"].strip()
            if subset not in _SETS.values():
                raise DataError(f"{path}:{line}: SemEval_set {subset!r} is not one of TRAIN, TRIAL, TEST")
            out.append({"text_a": row["sentence_A"], "text_b": row["sentence_B"],
                        "label": self._label(row, path, line), "set": subset})
        return out

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        return ('RobZamp/sick',)

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset(*self.hub_dataset, split={"train": "train", "dev": "validation", "test": "test"}[split])
        return [{"text_a": r["sentence_A"], "text_b": r["sentence_B"], "label": self._hub_label(r),
                 "set": _SETS[split]} for r in rows]

    def _hub_label(self, r: dict):
        return int(r["label"])  # the hub's ids follow ENTAILMENT, NEUTRAL, CONTRADICTION


@dataclass(frozen=True)
class SickRelatedness(Sick):
    name: str = "sick_relatedness"
    head: str = "regression"
    labels: tuple[str, ...] = ()
    metric: str = "pearson"

    def _label(self, row: dict, path: Path, line: int):
        try:
            return float(row["relatedness_score"])
        except ValueError:
            raise DataError(f"{path}:{line}: relatedness_score {row['relatedness_score']!r} is not a number") from None

    def _hub_label(self, r: dict):
        return float(r["relatedness"])
