"""The JSON Schema of a sweep YAML, for editors (`lntune schema sweep`): built from the dataclasses the reader
(lntune.sweep.config) fills and the TrainConfig fields its train: keys take, so the keys it lists are the keys the
reader allows. The reader stays the judge of a file: it also checks what a schema cannot (that a task or method
exists, that lr_from names a row of the sweep, ...)."""
from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import MISSING, fields, is_dataclass

from lntune.spec.masks import MASK_KINDS
from lntune.spec.train import train_file_schema
from lntune.sweep.config import (
    SHORTHANDS,
    AnalysisPlan,
    EfficiencyConfig,
    FisherSettings,
    LrGrowth,
    ModelEntry,
    RunEntry,
    Sequential,
    SweepConfig,
    TaskEntry,
    section_keys,
    train_fields,
)

# PyYAML reads 1e-3 (no dot) as a string, which the reader turns into a number, so the schema allows it too.
_NUMBER_TEXT = {"type": "string", "pattern": r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"}

# What a field's type hint cannot say: the shape of sections typed as plain dicts, and keys the reader requires.
_SHAPES = {
    (RunEntry, "mask"): {"type": "object", "additionalProperties": False, "required": ["kind", "fraction"],
                         "properties": {
                             "kind": {"anyOf": [{"enum": list(MASK_KINDS)},
                                                {"type": "array", "items": {"enum": list(MASK_KINDS)}}],
                                      "description": "which LN elements: " + ", ".join(MASK_KINDS)},
                             "fraction": {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                                                    {"type": "array", "items": {"type": "number",
                                                                               "exclusiveMinimum": 0, "maximum": 1}}],
                                          "description": "the share of LN elements trained, one run per value"},
                             "seed": {"type": ["integer", "null"], "description": "the random mask's seed"}}},
    (RunEntry, "options"): {"type": "object", "description": "the method's options (lntune methods); a composite's "
                                                             "as {part: options}"},
    (SweepConfig, "resources"): {"type": "object", "additionalProperties": False,
                                 "properties": {"num_cpus": {"type": "number", "minimum": 0},
                                                "num_gpus": {"type": "number", "minimum": 0}}},
    (Sequential, "contrasts"): {"type": "array", "minItems": 1, "items": {
        "type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 2, "maxItems": 2}},
    (SweepConfig, "registered"): {"type": "object", "description": "free-form design notes written to design.json"},
}
_LIST_ONLY = {(SweepConfig, "tasks"), (SweepConfig, "runs")}  # the reader wraps a lone value in a list, but not these
_REQUIRED = {SweepConfig: ["name", "tasks", "runs"], TaskEntry: ["name"], RunEntry: ["method"],
             ModelEntry: ["name"], Sequential: ["contrasts"]}


def sweep_file_schema() -> dict:
    """The JSON Schema of `lntune sweep FILE`'s YAML (every key, its type, default and help)."""
    top = _section(SweepConfig)
    top["properties"]["model"] = {**_any({"type": "string", "minLength": 1}, _section(ModelEntry)),
                                  "description": "the one model (give model: or models:, not both)"}
    for name in ("train_limit", "val_limit", "eval_limit"):
        top["properties"][name] = {**_section(TaskEntry)["properties"][name], "description":
                                   f"every task's {name}, unless the task sets its own"}
    assert set(top["properties"]) == SHORTHANDS | section_keys(SweepConfig)  # noqa: S101 - one key list, two readers
    top["oneOf"] = [{"required": ["model"]}, {"required": ["models"]}]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "lntune sweep FILE", **top}


def _section(cls) -> dict:
    """One mapping of the file: its dataclass's fields as keys (train: overrides inline where the reader takes them)."""
    hints, notes = typing.get_type_hints(cls), _notes(cls)
    properties = {}
    for f in fields(cls):
        if f.name not in section_keys(cls):
            continue
        if (cls, f.name) in _LIST_ONLY:
            spec = {"type": "array", "minItems": 1, "items": _hint(typing.get_args(hints[f.name])[0], f.name)}
        elif (cls, f.name) == (SweepConfig, "train"):
            spec = {"type": "object", "additionalProperties": False, "properties": _train_properties(),
                    "description": "training options shared by every run (lntune schema train)"}
        else:
            spec = _SHAPES.get((cls, f.name)) or _hint(hints[f.name], f.name)
        properties[f.name] = {**spec, **({"description": notes[f.name]} if f.name in notes else {})}
        if f.default is not MISSING and isinstance(f.default, (int, float, str)):
            properties[f.name]["default"] = f.default
    if cls in (TaskEntry, RunEntry):  # train fields sit beside the entry's own keys (e.g. epochs: 30 on a task)
        properties.update(_train_properties())
    out = {"type": "object", "additionalProperties": False, "properties": properties}
    if cls in _REQUIRED:
        out["required"] = _REQUIRED[cls]
    return out


def _train_properties() -> dict:
    every = train_file_schema()["properties"]
    return {name: every[name] for name in train_fields()}


def _hint(tp, name: str) -> dict:
    """A type hint as JSON Schema, loosened where the reader is: a list also takes one bare value, a float also
    takes number text, an entry of tasks:/models: also takes its name alone."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return {"type": "null"}
    if origin in (typing.Union, types.UnionType):
        return _any(*(_hint(a, name) for a in args))
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"anyOf": [{"type": "number"}, _NUMBER_TEXT]}
    if tp is str:
        return {"type": "string", "minLength": 1}
    if origin is list:
        item = _hint(args[0], name)
        return _any(item, {"type": "array", "items": item})
    if origin is dict:
        return {"type": "object", "additionalProperties": _hint(args[1], name)}
    if tp is dict:
        return {"type": "object"}
    if is_dataclass(tp):
        section = _section(tp)
        return _any({"type": "string", "minLength": 1}, section) if tp in (TaskEntry, ModelEntry) else section
    raise TypeError(f"{name}: no JSON Schema for {tp!r}; add it to sweep.schema._SHAPES")  # a new field's type


def _any(*options: dict) -> dict:
    """anyOf the options, nested anyOfs flattened (easier to read in an editor's hover)."""
    flat = [o for opt in options for o in (opt["anyOf"] if set(opt) == {"anyOf"} else [opt])]
    return flat[0] if len(flat) == 1 else {"anyOf": flat}


def _notes(cls) -> dict[str, str]:
    """Each field's one-line comment (with its continuation lines): the dataclasses document their fields in
    comments, nanoGPT-style, and the schema shows the same words rather than a second copy of them."""
    out, last = {}, None
    for line in inspect.getsource(cls).splitlines():
        field_line = re.match(r"\s+(\w+): [^#]*#\s*(.*)$", line)
        more = re.match(r"\s+#\s*(.*)$", line)
        if field_line:
            last = field_line.group(1)
            out[last] = field_line.group(2).strip()
        elif more and last:
            out[last] += " " + more.group(1).strip()
        else:
            last = None
    return out


# Every section the reader reads, for tests: the dataclass and where it sits in the file.
SECTIONS = {"": SweepConfig, "tasks[]": TaskEntry, "runs[]": RunEntry, "models[]": ModelEntry,
            "efficiency": EfficiencyConfig, "fisher": FisherSettings, "analysis": AnalysisPlan,
            "lr_growth": LrGrowth, "sequential": Sequential}
