"""Training options from a YAML file, read with typed access that names the file and the key at fault: the
reader of `lntune train --config FILE` (TrainConfig.from_file), which sweep configs (lntune.sweep.config) use too."""
from __future__ import annotations

from dataclasses import Field
from pathlib import Path

import yaml

from lntune.errors import LntuneError


class ConfigError(LntuneError):
    """A YAML config (a sweep, or `lntune train --config`) is malformed: the message names the file, the field and the fix."""


def load_yaml(path: Path, what: str):
    """The parsed YAML at `path`; a file that cannot be read or parsed is a ConfigError naming it (`what`: how
    messages call the file, e.g. "--config FILE")."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{what}: cannot read it ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{what}: not valid YAML: {e}") from e


def read_train_file(path: str | Path, fields) -> dict:
    """`lntune train --config FILE`: a YAML mapping with the keys of a sweep's train: section, plus the
    ones a single run sets itself (lr, seed, report_to), coerced and checked by the same rules."""
    path = Path(path)
    raw = load_yaml(path, f"--config {path}")
    r = Reader(path)
    known = {f.name: f for f in fields if f.name != "progress"}
    raw = raw.get("train", raw) if isinstance(raw, dict) and set(raw) == {"train"} else raw  # a pasted train: section
    return r.train(r.mapping(raw if raw is not None else {}, "", known), "", known)


class Reader:
    """Typed access to one YAML file, raising ConfigError with the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, at: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.path}: {at}: {msg}")

    def mapping(self, value, at: str, allowed, required=()) -> dict:
        if not isinstance(value, dict):
            raise self.error(at, f"expected a mapping of keys to values, got {kind(value)}")
        for k in value:
            if k not in allowed:
                where = f"{at}.{k}" if at else str(k)
                raise self.error(where, f"unknown key; allowed here: {', '.join(sorted(allowed))}")
        for k in required:
            if k not in value:
                raise self.error(at or "top level", f"missing {k!r}")
        return value

    def number(self, value, at: str, kind=float, lo=None, none=False, below_one=False):
        if value is None and none:
            return None
        if isinstance(value, str) and kind is float:  # PyYAML reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if below_one and ok and isinstance(value, float) and 0 < value < 1:
            return value  # a share
        if kind is int and ok and float(value).is_integer():
            value = int(value)
        if not ok or (kind is int and not isinstance(value, int)):
            raise self.error(at, f"expected {'an integer' if kind is int else 'a number'}, got {value!r}")
        if lo is not None and value < lo:
            raise self.error(at, f"{value!r} is below the minimum {lo}")
        return value

    def string(self, value, at: str, none=False) -> str | None:
        if value is None and none:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(at, f"expected a non-empty string, got {kind(value)}")
        return value

    def listed(self, value, at: str, item) -> list:
        if not isinstance(value, list):
            value = [value]
        return [item(v, f"{at}[{i}]") for i, v in enumerate(value)]

    def lrs(self, value, at: str) -> list[float]:
        out = self.listed(value, at, lambda v, a: self.number(v, a))
        if not out or any(lr <= 0 for lr in out):
            raise self.error(at, "give one or more positive learning rates, in priority order")
        return out

    def train(self, raw: dict, at: str, known: dict[str, Field]) -> dict:
        """The TrainConfig fields among `raw`, coerced to the field's type and checked against the field's own rule,
        the one `lntune train` and the Python API use (lntune.spec.train)."""
        out = {}
        for k, v in raw.items():
            if k not in known:
                continue
            where = f"{at}.{k}" if at else k
            out[k] = self._train_value(v, where, str(known[k].type))
            problem = known[k].metadata["rule"].problem(out[k])
            if problem:
                raise self.error(where, problem)
        return out

    def _train_value(self, v, at: str, kind: str):
        if v is None and "None" in kind:
            return None
        if kind.startswith("float"):
            return float(self.number(v, at))
        if kind.startswith("int"):
            return self.number(v, at, int)
        if kind.startswith("bool"):
            if not isinstance(v, bool):
                raise self.error(at, f"expected true or false, got {v!r}")
            return v
        return self.string(v, at)


def kind(value) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]
