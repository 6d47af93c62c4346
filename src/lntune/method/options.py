"""Method options from the command line (-o part.field=value) and the papers' presets."""
from __future__ import annotations

import json

from lntune.errors import MethodError

# Paper 000, section 4.1: tunable parameters aligned across methods by l and d_b.
PAPER_PRESETS = {
    "bert-base": {"prefix": {"length": 16}, "adapter": {"size": 16}, "mam": {"length": 8, "size": 8}},
    "bert-large": {"prefix": {"length": 24}, "adapter": {"size": 24}, "mam": {"length": 8, "size": 16}},
    "gpt2-medium": {"prefix": {"length": 16}, "adapter": {"size": 16}, "mam": {"length": 8, "size": 8}},
}


def _value(raw: str):
    try:
        return json.loads(raw)  # numbers, true/false, null
    except json.JSONDecodeError:
        return raw


def parse_assignments(method: str, assignments: list[str]) -> dict[str, dict]:
    """['prefix.length=8', 'ln.terms=bias'] -> {'prefix': {'length': 8}, 'ln': {'terms': 'bias'}}."""
    parts = method.split("+")
    out: dict[str, dict] = {}
    for a in assignments:
        key, sep, raw = a.partition("=")
        part, dot, field = key.rpartition(".")
        if not sep or not field:
            raise MethodError(f"-o {a!r}: write KEY=VALUE, e.g. -o {parts[0]}.seed=1")
        if not dot and len(parts) > 1:
            raise MethodError(f"-o {a!r}: name the part of {method}, e.g. -o {parts[0]}.{field}={raw}")
        part = part or parts[0]
        if part not in parts:
            raise MethodError(f"-o {a!r}: {part!r} is not a part of method {method}")
        out.setdefault(part, {})[field] = _value(raw)
    return out


def model_family(config) -> str | None:
    shape = (getattr(config, "model_type", None), getattr(config, "hidden_size", None),
             getattr(config, "num_hidden_layers", None))
    return {("bert", 768, 12): "bert-base", ("bert", 1024, 24): "bert-large",
            ("gpt2", 1024, 24): "gpt2-medium"}.get(shape)


def paper_preset(method: str, config) -> dict[str, dict]:
    """The paper's l / d_b for each part of `method` on this model."""
    family = model_family(config)
    if family is None:
        raise MethodError(
            f"--preset paper: the papers align parameters for BERT-base, BERT-large and GPT-2 medium, not "
            f"{getattr(config, 'model_type', '?')} with hidden size {getattr(config, 'hidden_size', '?')}; "
            "set sizes with -o (e.g. -o prefix.length=16)"
        )
    from lntune.method import parts  # the registry imports every method module; options is imported by them

    table = PAPER_PRESETS[family]
    return {m.name: dict(table[m.preset_key]) for m in parts(method) if m.preset_key}


def merge(*layers: dict[str, dict]) -> dict[str, dict]:
    """Later layers win field by field."""
    out: dict[str, dict] = {}
    for layer in layers:
        for part, opts in layer.items():
            out.setdefault(part, {}).update(opts)
    return out


def for_build(method: str, nested: dict[str, dict]) -> dict:
    """build_method takes a single method's options flat and a composite's nested."""
    return nested if "+" in method else nested.get(method, {})
