"""Multiple-choice QA: pick one of a fixed number of answers, scored by accuracy.

Every task yields {"context": str, "question": str, "choices": [str, ...], "label": int};
the model scores each (context + question, choice) pair and the best-scoring choice wins.
`labels` names the choices in order (answer A, B, ...), as skins record them.

    socialiqa   qa/socialiqa/{train,dev}.jsonl with {train,dev}-labels.lst (1..3, one per line)
    csqa        CommonsenseQA: the hub's tau/commonsense_qa, or upstream's
                qa/csqa/{train,dev}_rand_split.jsonl when present (its test answers are hidden)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import read_jsonl
from lntune.data.task import Task
from lntune.errors import DataError

_HUB_SPLIT = {"train": "train", "dev": "validation"}


def read_labels(path: Path, n_records: int, records: Path, choices: int) -> list[int]:
    """0-based answers from a labels file holding 1..`choices`, one per line, one per record."""
    if not path.exists():
        raise DataError(f"{path}: not found; it holds the answers (1..{choices}, one per line) to {records}")
    values = [(n, t.strip()) for n, t in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if t.strip()]
    if len(values) != n_records:
        raise DataError(
            f"{path}: {len(values)} labels for the {n_records} records of {records}; the files must "
            "match line for line (restore both from the same release)"
        )
    allowed = [str(i) for i in range(1, choices + 1)]
    for n, v in values:
        if v not in allowed:
            raise DataError(f"{path}:{n}: label {v!r}; expected one of {', '.join(allowed)}")
    return [int(v) - 1 for _, v in values]


@dataclass(frozen=True)
class SocialIQa(Task):
    name: str = "socialiqa"
    head: str = "multiple-choice"
    labels: tuple[str, ...] = ("A", "B", "C")
    metric: str = "accuracy"

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "qa" / "socialiqa" / f"{split}.jsonl"

    def read_local(self, path: Path) -> list[dict]:
        keys = ("context", "question", *(f"answer{c}" for c in self.labels))
        rows = read_jsonl(path, keys)
        answers = read_labels(path.with_name(f"{path.stem}-labels.lst"), len(rows), path, len(self.labels))
        return [
            {"context": r["context"], "question": r["question"],
             "choices": [r[f"answer{c}"] for c in self.labels], "label": y}
            for (_, r), y in zip(rows, answers)
        ]

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        return ('allenai/social_i_qa',)

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset(*self.hub_dataset, split=_HUB_SPLIT[split])
        return [
            {"context": r["context"], "question": r["question"],
             "choices": [r[f"answer{c}"] for c in self.labels], "label": int(r["label"]) - 1}
            for r in rows
        ]


@dataclass(frozen=True)
class CommonsenseQA(Task):
    name: str = "csqa"
    head: str = "multiple-choice"
    labels: tuple[str, ...] = ("A", "B", "C", "D", "E")
    metric: str = "accuracy"

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "qa" / "csqa" / f"{split}_rand_split.jsonl"

    def _example(self, question: str, letters: list[str], texts: list[str], key: str, where: str) -> dict:
        if list(letters) != list(self.labels) or key not in self.labels:
            raise DataError(
                f"{where}: choices labelled {list(letters)} with answer {key!r}; "
                f"CommonsenseQA has choices {', '.join(self.labels)} and one of them as the answer"
            )
        return {"context": "", "question": question, "choices": list(texts), "label": self.labels.index(key)}

    def read_local(self, path: Path) -> list[dict]:
        # Upstream JSONL: {"answerKey", "question": {"stem", "choices": [{"label", "text"}]}}
        out = []
        for line, r in read_jsonl(path, ("answerKey", "question")):
            q = r["question"]
            if not isinstance(q, dict) or "stem" not in q or "choices" not in q:
                raise DataError(f"{path}:{line}: 'question' needs 'stem' and 'choices' (the upstream JSONL layout)")
            choices = q["choices"]
            out.append(self._example(q["stem"], [c.get("label") for c in choices], [c.get("text") for c in choices],
                                     r["answerKey"], f"{path}:{line}"))
        return out

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        return ('tau/commonsense_qa',)

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset(*self.hub_dataset, split=_HUB_SPLIT[split])
        return [
            self._example(r["question"], r["choices"]["label"], r["choices"]["text"], r["answerKey"],
                          f"tau/commonsense_qa {split} row {i}")
            for i, r in enumerate(rows)
            if r["answerKey"]  # the test split has no answers
        ]
