"""Users' own multiple-choice data: a question, its choices and the answer.

    --task 'local:train=my/train.jsonl,dev=my/dev.jsonl,question=q,choices=options,answer=gold'
    --task 'local:train=quiz.csv,dev=quiz_dev.csv,question=q,choices=a+b+c+d,answer=gold,context=passage'

choices=COL        a list of strings (in CSV/TSV: that list as JSON text)
choices=A+B+C      one column per choice
answer=COL         the 0-based index of the right choice, its text, or its letter (A, B, ...)
context=COL        optional text read before the question
Every row has the same number of choices (the head scores a fixed number); the skin names them A, B, ...
"""
from __future__ import annotations

from typing import ClassVar

import json
import string
from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import clip
from lntune.data.local import read_table, text_cell
from lntune.data.local_gen import spec_fields
from lntune.data.task import Task
from lntune.errors import DataError

_KEYS = {"train", "dev", "test", "question", "choices", "answer", "context", "header", "encoding"}
_USAGE = ("write local:train=PATH,dev=PATH,question=COL,choices=COL (or choices=A+B+C),answer=COL"
          "[,context=COL][,header=none][,encoding=ENC]")


@dataclass(frozen=True)
class LocalChoiceTask(Task):

    usage: ClassVar[str] = _USAGE.removeprefix("write ")  # how the spec is written (lntune tasks)
    head: str = "multiple-choice"
    files: tuple[tuple[str, str], ...] = ()  # (split, path)
    question: str = "question"
    choices: tuple[str, ...] = ()  # one column holding a list, or one column per choice
    answer: str = "answer"
    context: str | None = None
    header: bool = True
    encoding: str = "utf-8"

    @classmethod
    def from_spec(cls, spec: str) -> "LocalChoiceTask":
        fields = spec_fields(spec, _KEYS, _USAGE)
        if not {"question", "choices", "answer"} <= set(fields):
            raise DataError(f"task 'local:{spec}': question=, choices= and answer= are needed; {_USAGE}")
        files = tuple((s, fields[s]) for s in ("train", "dev", "test") if s in fields)
        task = cls(name=f"local:{spec}", splits=tuple(s for s, _ in files), files=files,
                   question=fields["question"], choices=tuple(fields["choices"].split("+")),
                   answer=fields["answer"], context=fields.get("context"), header=fields.get("header") != "none",
                   encoding=fields.get("encoding", "utf-8"))
        train = task.read_local(Path(fields["train"]), expect=None)
        width = len(train[0]["choices"])
        return cls(**{**task.__dict__, "labels": tuple(_letter(i) for i in range(width))})

    def local_path(self, data_dir, split: str) -> Path:
        return Path(dict(self.files)[split])

    def load(self, split: str, data_dir) -> list[dict]:
        if split not in self.splits:
            raise DataError(f"task {self.name}: no {split} file given; add {split}=PATH to the spec")
        return self.read_local(self.local_path(None, split))

    def read_local(self, path: Path, expect: int | None | str = "labels") -> list[dict]:
        expect = len(self.labels) if expect == "labels" else expect
        columns = (self.question, *self.choices, self.answer) + ((self.context,) if self.context else ())
        out = []
        for n, r in read_table(path, columns, self.header, self.encoding, self.name.partition(":")[2]):
            where = f"{path}:{n}"
            choices = self._choices(r, where)
            if expect is None:
                expect = len(choices)
            if len(choices) != expect:
                raise DataError(f"{where}: {len(choices)} choices; every row needs {expect} (as the training "
                                "file's first row has): the head scores a fixed number of choices")
            out.append({"context": text_cell(r[self.context], where, self.context) if self.context else "",
                        "question": text_cell(r[self.question], where, self.question), "choices": choices,
                        "label": _answer(r[self.answer], choices, where, self.answer)})
        return out

    def _choices(self, r: dict, where: str) -> list[str]:
        if len(self.choices) > 1:
            return [text_cell(r[c], where, c) for c in self.choices]
        value = r[self.choices[0]]
        if isinstance(value, str):  # a CSV/TSV cell holds the list as JSON text
            try:
                value = json.loads(value)
            except ValueError:
                raise DataError(f"{where}: choices {clip(value)} is not a JSON list; write [\"first\", \"second\", "
                                "...], or name one column per choice (choices=a+b+c)") from None
        if not isinstance(value, list) or len(value) < 2:
            raise DataError(f"{where}: choices must be a list of at least two strings")
        return [text_cell(v, where, f"{self.choices[0]}[{i}]") for i, v in enumerate(value)]


def _letter(i: int) -> str:
    return string.ascii_uppercase[i] if i < 26 else f"C{i}"


def _answer(value, choices: list[str], where: str, column: str) -> int:
    """A 0-based index, the right choice's text, or its letter; a text that is also a letter or a number is
    read as the text when it is one of the choices."""
    if isinstance(value, str) and value in choices:
        if choices.count(value) > 1:
            raise DataError(f"{where}: answer {clip(value)} names {choices.count(value)} identical choices")
        return choices.index(value)
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is not None and text.isdigit() and int(text) < len(choices):
        return int(text)
    if text is not None and len(text) == 1 and text.isalpha() and text.upper() in string.ascii_uppercase[:len(choices)]:
        return string.ascii_uppercase.index(text.upper())
    raise DataError(f"{where}: answer {clip(value)} ({column!r}) is not a choice's 0-based index "
                    f"(0-{len(choices) - 1}), its letter or its text")
