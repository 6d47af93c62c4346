"""Head registry: a new head kind is one module plus one line here. Nothing outside this package compares head
names; every other layer asks the head object (`get_head(task.head)`) for what differs between kinds."""
from __future__ import annotations

from lntune.errors import LntuneError
from lntune.heads.base import IGNORE, Head, majority_share
from lntune.heads.causal_lm import CausalLM
from lntune.heads.classification import Classification
from lntune.heads.multiple_choice import MultipleChoice
from lntune.heads.regression import Regression
from lntune.heads.token_classification import TokenClassification

DEFAULT = "classification"  # transformers' default head: what a saved config that names no other kind holds

# One line per head kind.
HEADS: dict[str, Head] = {h.name: h for h in (
    Classification(),
    Regression(),
    CausalLM(),
    TokenClassification(),
    MultipleChoice(),
)}


def get_head(name: str) -> Head:
    """The head called `name`; an unknown name is an error that lists the known ones."""
    try:
        return HEADS[name]
    except (KeyError, TypeError):
        raise LntuneError(f"unknown head {name!r}: choose one of {', '.join(HEADS)}") from None


def head_of_config(architectures: tuple[str, ...] | list[str] | None, problem_type: str | None) -> Head:
    """The head a saved transformers config holds (its `architectures` and `problem_type`)."""
    archs = tuple(architectures or ())
    found = [h for h in HEADS.values() if h.name != DEFAULT and h.matches(archs, problem_type)]
    return found[0] if found else HEADS[DEFAULT]


def peft_head(task_type: str | None, outputs: int | None = None) -> Head:
    """The head of a PEFT adapter of `task_type` (none reads as SEQ_CLS, PEFT's default for a saved head) whose
    saved head has `outputs` rows: SEQ_CLS holds both sequence heads, and one output means regression."""
    kinds = ([h for h in HEADS.values() if task_type and h.peft_task_type == task_type] or
             [h for h in HEADS.values() if h.peft_task_type == HEADS[DEFAULT].peft_task_type])
    single = [h for h in kinds if h.check_outputs([], 2) is not None]  # heads that must have exactly one output
    return single[0] if outputs == 1 and single else kinds[0]


def encode(examples: list[dict], tokenizer, head: str, max_length: int) -> list[dict]:
    """Features of the examples of a task with head `head`."""
    return get_head(head).encode(examples, tokenizer, max_length)


__all__ = ["DEFAULT", "HEADS", "IGNORE", "Head", "encode", "get_head", "head_of_config", "majority_share", "peft_head"]
