"""Task registry: a new task is one module plus one line here."""
from __future__ import annotations

from lntune.data.e2e import E2E
from lntune.data.files import resolve_data_dir
from lntune.data.glue import RTE, SST2, STSB
from lntune.data.task import Task, subset
from lntune.errors import DataError

TASKS: dict[str, Task] = {t.name: t for t in (SST2, RTE, STSB, E2E())}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}: choose one of {', '.join(sorted(TASKS))}")
    return TASKS[name]


__all__ = ["TASKS", "Task", "get_task", "resolve_data_dir", "subset"]
