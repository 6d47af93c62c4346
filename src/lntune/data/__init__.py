"""Task registry: a new task is one module plus one line here."""
from __future__ import annotations

from lntune.data.e2e import E2E
from lntune.data.files import resolve_data_dir
from lntune.data.glue import COLA, MNLI, MNLI_MM, MRPC, QNLI, QQP, RTE, SNLI, SST2, STSB
from lntune.data.local import LocalTask
from lntune.data.local_choice import LocalChoiceTask
from lntune.data.local_gen import LocalGenTask
from lntune.data.multiple_choice import CommonsenseQA, SocialIQa
from lntune.data.ner import Btc, Conll04, ConllTask
from lntune.data.nlg import DART, SAMSum, WebNLG
from lntune.data.sick import Sick, SickRelatedness
from lntune.data.superglue import CB
from lntune.data.task import Task, subset
from lntune.errors import DataError

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        SST2, RTE, STSB, COLA, MRPC, QQP, QNLI, MNLI, MNLI_MM, SNLI,
        CB(), Sick(), SickRelatedness(),
        E2E(), WebNLG(), DART(), SAMSum(),
        Conll04(), Btc(), SocialIQa(), CommonsenseQA(),
    )
}


def local_task(spec: str) -> Task:
    """A users' file task; its columns say which kind: prompt=/messages= generate, question=/choices= choose."""
    keys = {part.split("=", 1)[0] for part in spec.split(",") if "=" in part}
    if keys & {"prompt", "target", "messages"}:
        return LocalGenTask.from_spec(spec)
    if keys & {"question", "choices", "answer"}:
        return LocalChoiceTask.from_spec(spec)
    return LocalTask.from_spec(spec)


# Tasks described by a spec after "kind:" (users' own files).
SPEC_TASKS = {"local": local_task, "conll": ConllTask.from_spec}
# How those specs are written, for `lntune tasks`: (form, head, what the files hold).
SPEC_FORMS = (
    (LocalTask.usage, "classification | regression", "CSV, TSV or JSONL rows with text and label columns"),
    (LocalGenTask.usage, "causal-lm", "rows with a prompt and its target, or chat messages"),
    (LocalChoiceTask.usage, "multiple-choice", "rows with a question, its choices and the answer"),
    (ConllTask.usage, "token-classification", "CoNLL files: one token<TAB>tag per line, sentences split by blank lines"),
)


def get_task(name: str) -> Task:
    kind, sep, spec = name.partition(":")
    if sep and kind in SPEC_TASKS:
        return SPEC_TASKS[kind](spec)
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}: choose one of {', '.join(sorted(TASKS))}, or local:... / conll:...")
    return TASKS[name]


__all__ = ["TASKS", "Task", "get_task", "resolve_data_dir", "subset"]
