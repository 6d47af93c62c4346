"""Users' own generation data for decoders: prompt/target columns, or chat conversations.

    --task 'local:train=my/train.jsonl,dev=my/dev.jsonl,prompt=question,target=answer'
    --task 'local:train=chats.jsonl,dev=chats_dev.jsonl,messages=messages'

prompt=COL,target=COL  the loss is on the target only; prompt and target are joined as written (end the
                       prompt with a space or a newline where one belongs), then the end-of-text token
messages=COL           a list of {"role", "content"} (in CSV/TSV: that list as JSON text), rendered with
                       the tokenizer's chat template; the loss is on the assistant turns (lntune.data.chat)
metrics=bleu+rouge_l   generation metrics for --generate N (lntune.spec.metrics.NLG_METRICS)
max_new_tokens=64      generation budget
header=, encoding=     as for the classification local: tasks
"""
from __future__ import annotations

from typing import ClassVar

import json
from dataclasses import dataclass
from pathlib import Path

from lntune.data.chat import check_messages
from lntune.data.local import read_table, text_cell
from lntune.data.nlg import NLGTask
from lntune.spec.metrics import NLG_METRICS
from lntune.errors import DataError

_KEYS = {"train", "dev", "test", "prompt", "target", "messages", "metrics", "max_new_tokens", "header", "encoding"}
_USAGE = ("write local:train=PATH,dev=PATH,prompt=COL,target=COL (or messages=COL for chat conversations)"
          "[,metrics=bleu+rouge_l][,max_new_tokens=N][,header=none][,encoding=ENC]")


def spec_fields(spec: str, keys: set[str], usage: str) -> dict[str, str]:
    """The key=value pairs of a local: spec, refusing unknown keys and a spec without train=."""
    fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
    bad = set(fields) - keys
    if bad or "train" not in fields:
        raise DataError(f"task 'local:{spec}': {usage}" + (f" (unknown keys {sorted(bad)})" if bad else ""))
    if fields.get("header", "first") not in ("none", "first"):
        raise DataError(f"task 'local:{spec}': header must be none (no header row) or first (the default)")
    return fields


@dataclass(frozen=True)
class LocalGenTask(NLGTask):

    usage: ClassVar[str] = _USAGE.removeprefix("write ")  # how the spec is written (lntune tasks)
    files: tuple[tuple[str, str], ...] = ()  # (split, path)
    columns: tuple[str, ...] = ()  # (prompt, target) or (messages,)
    header: bool = True
    encoding: str = "utf-8"

    @classmethod
    def from_spec(cls, spec: str) -> "LocalGenTask":
        fields = spec_fields(spec, _KEYS, _USAGE)
        chat = "messages" in fields
        if chat == ("prompt" in fields or "target" in fields) or (not chat and not {"prompt", "target"} <= set(fields)):
            raise DataError(f"task 'local:{spec}': give prompt= and target= columns, or messages= alone; {_USAGE}")
        metrics = tuple(fields.get("metrics", "bleu+rouge_l").split("+"))
        if not metrics or set(metrics) - set(NLG_METRICS):
            raise DataError(f"task 'local:{spec}': metrics= takes names joined by '+' from {', '.join(NLG_METRICS)}")
        budget = fields.get("max_new_tokens", "64")
        if not budget.isdigit() or not 1 <= int(budget) <= 4096:
            raise DataError(f"task 'local:{spec}': max_new_tokens must be a whole number from 1 to 4096")
        columns = (fields["messages"],) if chat else (fields["prompt"], fields["target"])
        header = fields.get("header") != "none"
        if not header and not all(c.isdigit() for c in columns):
            raise DataError(f"task 'local:{spec}': with header=none, columns are 0-based numbers (prompt=0,target=1)")
        files = tuple((s, fields[s]) for s in ("train", "dev", "test") if s in fields)
        return cls(name=f"local:{spec}", splits=tuple(s for s, _ in files), files=files, columns=columns,
                   header=header, encoding=fields.get("encoding", "utf-8"), gen_metrics=metrics,
                   max_new_tokens=int(budget))

    @property
    def chat(self) -> bool:
        return len(self.columns) == 1

    def local_path(self, data_dir, split: str) -> Path:
        return Path(dict(self.files)[split])

    def load(self, split: str, data_dir) -> list[dict]:
        if split not in self.splits:
            raise DataError(f"task {self.name}: no {split} file given; add {split}=PATH to the spec")
        return self.read_local(self.local_path(None, split))

    def read_local(self, path: Path) -> list[dict]:
        rows = read_table(path, self.columns, self.header, self.encoding, self.name.partition(":")[2])
        if self.chat:
            return [{"messages": _messages(r[self.columns[0]], f"{path}:{n}")} for n, r in rows]
        out = []
        for n, r in rows:
            prompt, target = (text_cell(r[c], f"{path}:{n}", c) for c in self.columns)
            if not target.strip():
                raise DataError(f"{path}:{n}: target {self.columns[1]!r} is empty; every row needs an answer to "
                                "learn, or drop the row")
            out.append({"prompt": prompt, "target": target})
        return out


def _messages(value, where: str) -> list[dict]:
    if isinstance(value, str):  # a CSV/TSV cell holds the list as JSON text
        try:
            value = json.loads(value)
        except ValueError as e:
            raise DataError(f"{where}: the messages cell is not JSON ({e}); write the list of "
                            "{\"role\", \"content\"} objects as JSON") from None
    return check_messages(value, where)
