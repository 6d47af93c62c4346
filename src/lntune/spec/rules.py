"""What one option accepts, in words a user can act on: every TrainConfig field and every run option has one."""
from __future__ import annotations

import math
import numbers
import os
import re
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Rule:
    """What one option accepts; `problem` says what is wrong with a value, in words a user can act on."""

    kind: type  # int, float, bool or str
    lo: float | None = None
    hi: float | None = None
    above: bool = False  # lo itself is refused
    finite: bool = True
    choices: tuple[str, ...] = ()
    unset: str = ""  # what None means, said in messages
    none: bool = False  # None is accepted (implied by `unset`)
    note: str = ""  # why the range is what it is
    what: str = "a folder path"  # what a str option holds, said in messages
    several: bool = False  # choices may be joined by commas ("tensorboard,wandb"); the first choice stands alone

    def allowed(self) -> str:
        if self.choices and self.several:
            return (f"choose {self.choices[0]}, or one or more of {', '.join(self.choices[1:])} joined by commas "
                    f"(e.g. {','.join(self.choices[1:3])})")
        if self.choices:
            return "choose " + either(self.choices)
        if self.kind is bool:
            return "must be true or false"
        if self.kind is str:
            text = f"must be {self.what}"
        else:
            noun = "an integer" if self.kind is int else "a finite number" if self.finite else "a number"
            if self.lo is not None and self.hi is not None:
                text = f"must be {noun} in {'(' if self.above else '['}{self.lo}, {self.hi}]"
            elif self.lo is not None:
                text = f"must be {noun} {'>' if self.above else '>='} {self.lo}"
            else:
                text = f"must be {noun}"
        text += f" ({self.note})" if self.note else ""
        return text + (f", or unset ({self.unset})" if self.unset else "")

    def accepts(self, value) -> bool:
        if value is None:
            return self.none or bool(self.unset)
        if self.choices and self.several and isinstance(value, str) and value != self.choices[0]:
            parts = value.split(",")
            return len(set(parts)) == len(parts) and all(p in self.choices[1:] for p in parts)
        if self.choices:
            return isinstance(value, str) and value in self.choices
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return isinstance(value, (str, os.PathLike))
        base = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, base):
            return False
        if math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        low_ok = self.lo is None or (value > self.lo if self.above else value >= self.lo)
        return low_ok and (self.hi is None or value <= self.hi)

    def problem(self, value) -> str | None:
        return None if self.accepts(value) else f"{value!r}: {self.allowed()}"

    def json_schema(self) -> dict:
        """The JSON Schema of the values this rule accepts, as far as JSON Schema can say it (a comma-joined list
        of choices is a pattern; infinity, which YAML writes .inf, has no JSON form)."""
        if self.choices and self.several:
            rest = "|".join(map(re.escape, self.choices[1:]))
            out: dict = {"type": "string", "pattern": f"^({re.escape(self.choices[0])}|({rest})(,({rest}))*)$"}
        elif self.choices:
            out = {"type": "string", "enum": list(self.choices)}
        else:
            out = {"type": {bool: "boolean", str: "string", int: "integer"}.get(self.kind, "number")}
            if self.lo is not None:
                out["exclusiveMinimum" if self.above else "minimum"] = self.lo
            if self.hi is not None:
                out["maximum"] = self.hi
        if self.none or self.unset:
            out = {"anyOf": [out, {"type": "null"}]}
        return out


def either(items) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


SEED = Rule(int, 0, 2**32 - 1)  # numpy's seed range
SCALE = Rule(float, -1e4, 1e4, note="a multiplier of float32 activations")  # beyond it float32 overflows in a step


def ruled(default, rule: Rule):
    """A config field (a method's options) with the rule its values must meet."""
    return field(default=default, metadata={"rule": rule})


def field_problems(config) -> list[tuple[str, str]]:
    """(field, what is wrong) for every field of dataclass `config` whose value breaks its rule; values that only
    need a plain type (3 for 3.0, 3 for the text "3") are converted in place first."""
    out = []
    for f in fields(config):
        rule = f.metadata.get("rule")
        if rule is None:
            continue
        value = getattr(config, f.name)
        if rule.kind is str and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # -o layers=3 arrives as JSON's 3
        elif rule.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        object.__setattr__(config, f.name, value)
        problem = rule.problem(value)
        if problem:
            out.append((f.name, problem))
    return out

