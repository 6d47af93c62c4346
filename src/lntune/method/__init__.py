"""Method registry: a new method is one module plus one line here."""
from __future__ import annotations

from lntune.errors import MethodError
from lntune.method.base import Method, Tuned
from lntune.method.ln import LNTuning
from lntune.method.tuning import Tuning, prepare

METHODS: dict[str, type[Method]] = {
    LNTuning.name: LNTuning,
}


def build_method(name: str, **options) -> Method:
    if name not in METHODS:
        raise MethodError(f"unknown method {name!r}: choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name](**options)


__all__ = ["METHODS", "Method", "Tuned", "Tuning", "build_method", "prepare"]
