"""What one option accepts, in words a user can act on: every TrainConfig field and every run option has one."""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass


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

    def allowed(self) -> str:
        if self.choices:
            return "choose " + either(self.choices)
        if self.kind is bool:
            return "must be true or false"
        if self.kind is str:
            text = "must be a folder path"
        else:
            noun = "an integer" if self.kind is int else "a finite number" if self.finite else "a number"
            if self.lo is not None and self.hi is not None:
                text = f"must be {noun} in [{self.lo}, {self.hi}]"
            else:
                text = f"must be {noun} {'>' if self.above else '>='} {self.lo}"
        text += f" ({self.note})" if self.note else ""
        return text + (f", or unset ({self.unset})" if self.unset else "")

    def accepts(self, value) -> bool:
        if value is None:
            return self.none or bool(self.unset)
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


def either(items) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
