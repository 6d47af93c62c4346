"""The schema of skin.json: one typed record (pydantic), checked whenever a skin is read or saved.

Keys a skin needs to load (base, method, rebuild, tuned, head, tensors_sha256) are required; the
record of the run (task, data, train, metrics, generation) is typed where present and required only by
what uses it (`require`: `lntune eval` needs the task, the dev subset, the training settings and the
saved metrics). Readers get the typed, frozen `SkinRecord` and read it by attribute.

Unknown keys are kept (and typed by nobody), unlike a sweep record's: skins travel between machines and
versions (the Hub), so a key a newer lntune adds must not make the skin unreadable here; a change that old
readers must not ignore raises FORMAT_VERSION instead.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lntune.errors import SkinError
from lntune.heads import HEADS
from lntune.spec.train import field_problem
from lntune.train.validate import DTYPE_NAMES
from lntune.method import METHODS

FORMAT_NAME = "lntune-skin"
FORMAT_VERSION = 1  # a skin.json without "format" was written before it was checked: read as version 1
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
_FORMAT = re.compile(rf"{FORMAT_NAME}/(\d+)")

# What `lntune eval` (evaluate_skin, generate_skin) reads besides what loading needs.
EVAL_NEEDS = ("task.name", "task.head", "data.eval_limit", "train.seed", "train.max_length",
              "train.eval_batch_size", "train.mixed_precision", "metrics")

def _known_head(name: str) -> str:
    # Read at validation time, not import time: a head registered after import (a plugin, a test) is a head.
    if name not in HEADS:
        raise ValueError(f"should be one of {', '.join(map(repr, HEADS))} (got {_clip(name)})")
    return name


Head = Annotated[str, AfterValidator(_known_head)]
Dtype = Literal[DTYPE_NAMES]  # type: ignore[valid-type]


class SkinKeyWarning(DeprecationWarning):
    """skin.json's record read like the dict it was (meta["method"]); lntune's own code never does."""


class _Record(BaseModel):
    # strict: "64" is not a batch size, true is not 1; extra keys are kept (and typed by nobody)
    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    def __getitem__(self, name: str) -> Any:
        # read_skin and load_skin returned the parsed JSON before; meta["method"] keeps working, with a note.
        warnings.warn(f"skin records are lntune.skin_schema.SkinRecord objects: read meta.{name}, not "
                      f"meta[{name!r}]", SkinKeyWarning, stacklevel=2)
        return self.as_json()[name]

    def get(self, name: str, default: Any = None) -> Any:
        warnings.warn(f"skin records are lntune.skin_schema.SkinRecord objects: read meta.{name}, not "
                      f"meta.get({name!r})", SkinKeyWarning, stacklevel=2)
        return self.as_json().get(name, default)

    def as_json(self) -> dict[str, Any]:
        """The record as skin.json holds it (the keys it was read with, extra ones included)."""
        return self.model_dump(mode="json", exclude_unset=True)


class BaseRecord(_Record):
    model: str = Field(min_length=1)
    fingerprint: str = Field(min_length=1)
    dtype: Dtype
    head: Head
    source: Optional[dict[str, Any]] = None  # where the weights came from (model/load), for cards and exports


class TaskRecord(_Record):
    name: str = Field(min_length=1)
    head: Optional[Head] = None
    labels: list[str] = []
    metric: Optional[str] = None
    text_columns: Optional[list[str]] = None  # the texts per input, when the task names them

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        seen = [x for i, x in enumerate(labels) if x in labels[:i]]
        if seen:  # two classes of one name: their probabilities would collapse into one key
            raise ValueError(f"label {seen[0]!r} appears more than once")
        return labels


class DataRecord(_Record):
    train_limit: Optional[int] = Field(None, ge=0)
    eval_limit: Optional[int] = Field(None, ge=0)
    train_size: Optional[int] = None
    dev_size: Optional[int] = None
    val_limit: Optional[Union[int, float]] = None  # a validation slice held out of train (sweeps; carved)
    carved: Optional[bool] = None  # no dev file: the validation slice was carved from the training file


_EVAL_TRAIN = ("seed", "max_length", "eval_batch_size", "mixed_precision")


class TrainRecord(_Record):
    """The run's TrainConfig. The fields evaluation reads are checked, where present, by the rules TrainConfig
    itself uses (lntune.train.validate); the others only describe the run, and a rule made stricter since
    then must not make an old skin unreadable."""

    seed: Any = None
    max_length: Any = None
    eval_batch_size: Any = None
    mixed_precision: Any = None

    @field_validator(*_EVAL_TRAIN)
    @classmethod
    def _rule(cls, value, info):
        problem = field_problem(info.field_name, value)
        if problem:
            raise ValueError(problem)
        return value


class GenerationSettings(_Record):
    limit: Optional[int] = Field(None, ge=-1)
    num_beams: int = Field(1, ge=1)
    batch_size: Optional[int] = Field(None, ge=1)


class GenerationRecord(_Record):
    settings: GenerationSettings
    metrics: dict[str, Optional[float]] = {}


class SkinRecord(_Record):
    format: Optional[str] = None
    lntune: Optional[str] = None
    method: str = Field(min_length=1)
    options: dict[str, Any] = {}
    rebuild: dict[str, Any]
    base: BaseRecord
    tuned: list[str]
    head: list[str]
    counts: Optional[dict[str, Any]] = None
    tensors_sha256: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    data_root: Optional[str] = None  # the folder relative paths in a local:/conll: task spec were given from
    task: Optional[TaskRecord] = None
    data: Optional[DataRecord] = None
    train: Optional[TrainRecord] = None
    metrics: Optional[dict[str, Any]] = None
    steps: Optional[int] = None  # optimizer steps taken
    train_seconds: Optional[Union[int, float]] = None
    best_seconds: Optional[Union[int, float]] = None  # training time until the kept state
    curve: Optional[list[dict[str, Any]]] = None  # the test split after each listed epoch (budget curves)
    test: Optional[dict[str, Any]] = None  # the kept state on the test split (sweeps)
    generation: Optional[GenerationRecord] = None
    command: Optional[str] = None  # how the run was started
    imported: Optional[dict[str, Any]] = None  # a skin made from a PEFT adapter: where from

    @property
    def labels(self) -> list[str]:
        """The task's class names in index order; empty when the skin records none."""
        return list(self.task.labels) if self.task is not None else []

    @field_validator("format")
    @classmethod
    def _version(cls, value):
        if value is None:
            return value
        m = _FORMAT.fullmatch(value)
        if m is None:
            raise ValueError(f"{_clip(value)}: not an lntune skin format ({FORMAT})")
        if int(m.group(1)) > FORMAT_VERSION:
            raise ValueError(f"{_clip(value)}: written by a newer lntune; this one reads {FORMAT}: upgrade lntune")
        if int(m.group(1)) < 1:
            raise ValueError(f"{_clip(value)}: not an lntune skin format ({FORMAT})")
        return value

    @field_validator("method")
    @classmethod
    def _method(cls, value):
        unknown = [p for p in value.split("+") if p not in METHODS]
        if unknown:
            raise ValueError(f"{_clip(value)} is not a method this lntune has (unknown part {unknown[0]!r}; "
                             f"methods: {', '.join(sorted(METHODS))})")
        return value

    @model_validator(mode="after")
    def _rebuild(self):
        # A method that reads a file (ln's mask) is rebuilt from the skin's own mask: tensors, never from a path
        # the skin names; and a composite's rebuild options are {part: options}.
        parts = self.method.split("+")
        per_part = [self.rebuild.get(p, {}) for p in parts] if len(parts) > 1 else [self.rebuild]
        if len(parts) > 1 and set(self.rebuild) - set(parts):
            extra = sorted(set(self.rebuild) - set(parts))
            raise ValueError(f"rebuild: options for {extra}, which is not a part of {self.method}")
        for part, opts in zip(parts, per_part):
            if not isinstance(opts, dict):
                raise ValueError(f"rebuild.{part}: expected an object of options")
            if opts.get("mask") is not None:
                raise ValueError("rebuild names a mask file; a skin carries its masks as mask: tensors in "
                                 "tuned.safetensors, and lntune does not read files a skin names for it")
        return self


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "the record"


def _clip(value, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _message(e: ValidationError) -> str:
    first = e.errors()[0]
    where, msg = _where(first["loc"]), first["msg"]
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if first["type"] == "missing":
        text = f"{where} is missing"
    elif first["type"] in ("value_error", "assertion_error"):
        text = f"{where} {msg}" if first["loc"] else msg
    else:
        text = f"{where}: {msg[:1].lower()}{msg[1:]} (got {_clip(first.get('input'))})"
    more = len(e.errors()) - 1
    return text + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def check_record(meta, path: str | Path, require: tuple[str, ...] = ()) -> SkinRecord:
    """`meta` (skin.json's parsed JSON) checked against the schema: returns the typed record, with a missing
    "format" read as version 1, or raises one SkinError line naming `path`. `require`: dotted keys that
    must be present (EVAL_NEEDS for evaluating) in a skin lntune trained; one imported from PEFT has none of
    them, and whoever evaluates it uses lntune's defaults instead."""
    if not isinstance(meta, dict):
        kind = {list: "a list", str: "a string", type(None): "null"}.get(type(meta), type(meta).__name__)
        raise SkinError(f"{path}: {kind}, not a skin record (a JSON object with base, method, tuned, ...); "
                        "the skin is corrupt, train it again")
    meta = {"format": FORMAT, **meta}  # a skin.json without "format" was written before it was checked
    try:
        record = SkinRecord.model_validate(meta)
    except ValidationError as e:
        if e.errors()[0]["loc"][:1] == ("format",):  # another format or version: "corrupt" would mislead
            raise SkinError(f"{path}: {_message(e)}") from None
        raise SkinError(f"{path}: not a valid skin record: {_message(e)}; the skin is corrupt or was edited, "
                        "train it again") from None
    for key in require if record.imported is None else ():
        node = meta
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise SkinError(f"{path}: {key} is missing, and evaluating the skin needs it; the skin is "
                                "incomplete or was edited, train it again")
            node = node[part]
    return record
