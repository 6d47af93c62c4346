"""The training options' schema: one rule per TrainConfig field, and the checks a run needs before it
loads anything (dtype, norm map, model folder, positions, output folder).

TrainConfig runs these rules when it is built, so the CLI, the Python API and sweep YAMLs (which build a
TrainConfig for every run, and check each field as they read it) refuse the same values with the same words.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from lntune.errors import LntuneError, SkinError, TrainingError
from lntune.spec.files import SKIN_JSON

ALIASES = ("minilm", "smollm2")  # lntune.model.load.resolve maps these to embedded models
DTYPE_NAMES = ("float32", "bfloat16", "float16")
TRACKERS = ("none", "tensorboard", "wandb", "mlflow")  # accelerate's tracker names that lntune train offers  # the keys of lntune.model.load.DTYPES (torch stays unimported)
# TrainConfig fields without a `lntune train` option: messages name them as Python does.
NO_FLAG = ("packed", "fast_dropout", "cut_last_block", "cache_max_bytes", "cache_dir")


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
            return "choose " + _either(self.choices)
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


def _either(items) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


RULES: dict[str, Rule] = {
    "lr": Rule(float, 0, above=True),
    "head_lr": Rule(float, 0, above=True, unset="the head uses the lr"),
    "epochs": Rule(int, 0, note="0 evaluates the untuned model"),
    "max_steps": Rule(int, 1, unset="train for the epochs"),
    "batch_size": Rule(int, 1),
    "grad_accum": Rule(int, 1, note="optimizer batch = batch size x grad accum"),
    "eval_batch_size": Rule(int, 1),
    "max_length": Rule(int, 1, note="tokens per example"),
    "warmup_ratio": Rule(float, 0, 1, note="a share of all steps"),
    "weight_decay": Rule(float, 0),
    # clip_grad_norm_ scales by max_norm / norm: a negative max_norm flips the gradient, inf never clips.
    "max_grad_norm": Rule(float, 0, above=True, finite=False, note="inf: no clipping"),
    "eval_every": Rule(int, 1, unset="evaluate after each epoch"),
    "patience": Rule(int, 1, unset="no early stopping"),
    "seed": Rule(int, 0, 2**32 - 1),  # numpy's seed range
    "mixed_precision": Rule(str, choices=("no", "bf16", "fp16")),
    "progress": Rule(bool),
    "report_to": Rule(str, choices=TRACKERS),
    "packed": Rule(bool),
    "fast_dropout": Rule(bool),
    "cut_last_block": Rule(bool),
    "frozen_bottom": Rule(str, choices=("train", "eval")),
    "cache_bottom": Rule(str, choices=("auto", "on", "off")),
    "cache_max_bytes": Rule(int, 0),
    "cache_dir": Rule(str, unset="the system temp dir"),
    "select": Rule(str, choices=("loss", "score")),
    "min_delta": Rule(float, 0, note="in the selected quantity's units, e.g. 0.001 = 0.1 accuracy points"),
}


def flag(name: str) -> str:
    """The option as `lntune train` spells it (the field name where the CLI has none)."""
    return name if name in NO_FLAG else "--" + name.replace("_", "-")


def field_problem(name: str, value) -> str | None:
    """What is wrong with `value` for TrainConfig field `name` ("-1.0: must be ..."), or None."""
    return RULES[name].problem(value)


def check_config(config) -> None:
    """Every field of a TrainConfig against its rule, then the rules that join fields; numbers become
    plain int/float (numpy scalars would not survive json.dumps into skin.json)."""
    for f in fields(config):
        value = getattr(config, f.name)
        problem = field_problem(f.name, value)
        if problem:
            raise TrainingError(f"{flag(f.name)} {problem}")
        if value is not None:
            object.__setattr__(config, f.name, _plain(RULES[f.name], value))
    if config.cache_bottom == "on" and config.frozen_bottom != "eval":
        raise TrainingError(
            "--cache-bottom on needs --frozen-bottom eval: the cached states are computed once, "
            "so the frozen layers below must run without dropout"
        )


def _plain(rule: Rule, value):
    if rule.kind in (int, float) and not isinstance(value, rule.kind):
        return rule.kind(value)
    return os.fspath(value) if rule.kind is str else value


# The options of a run that are not TrainConfig's, checked by train_task before it loads anything.
RUN_RULES = {
    "train_limit": Rule(int, 0, none=True, note="0: the whole split"),
    "eval_limit": Rule(int, 0, none=True, note="0: the whole split"),
    "generate": Rule(int, -1, none=True, note="-1: every dev input, 0: none"),
    "num_beams": Rule(int, 1),
}


def check_run(model: str, config, dtype: str = "float32", norm_map: dict | None = None, out=None,
              overwrite: bool = False, **options) -> None:
    """Everything `lntune.api.train_task` can refuse before it loads data or weights, cheap checks first;
    `options` are its other arguments with a rule in RUN_RULES (train_limit=..., num_beams=...)."""
    for name, value in options.items():
        problem = RUN_RULES[name].problem(value)
        if problem:
            raise LntuneError(f"{flag(name)} {problem}")
    check_dtype(dtype)
    check_norm_map(norm_map)
    check_model(model)
    if out is not None:
        check_out(out, overwrite)
    check_max_length(model, config.max_length)


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPE_NAMES:
        raise LntuneError(f"--dtype {dtype!r}: choose {_either(DTYPE_NAMES)}")


def parse_norm_map(text: str | None) -> dict | None:
    """--norm-map's JSON, checked: an object of name regex -> norm label."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise LntuneError(f"--norm-map: not valid JSON ({e.msg} at column {e.colno}); {_NORM_MAP_FORM}") from None
    check_norm_map(value)
    return value


def check_norm_map(value) -> None:
    from lntune.model.archmap import LABELS

    if value is None:
        return
    if not isinstance(value, dict):
        raise LntuneError(f"--norm-map: expected a JSON object, got {type(value).__name__}; {_NORM_MAP_FORM}")
    for pattern, label in value.items():
        if label not in LABELS:
            raise LntuneError(f"--norm-map: label {label!r} for {pattern!r}: choose {_either(LABELS)}")
        try:
            re.compile(pattern)
        except (re.error, TypeError) as e:
            raise LntuneError(f"--norm-map: {pattern!r} is not a regular expression ({e})") from None


_NORM_MAP_FORM = 'give an object of name regex -> mha|ffn|embeddings|final, e.g. \'{"norm_a$": "mha"}\''


def check_model(model: str) -> None:
    """A --model that names a local file or folder must be a model folder (config.json); hub ids pass."""
    if model in ALIASES:
        from lntune.model.embedded import package_dir

        package_dir(model)  # installed? (found, not imported)
        return
    path = Path(model)
    if path.is_dir() and not (path / "config.json").is_file():
        raise LntuneError(
            f"--model {model}: the folder has no config.json, so it is not a model; give a folder saved with "
            "save_pretrained, an alias (minilm, smollm2) or a Hugging Face id"
        )
    if path.exists() and not path.is_dir():
        raise LntuneError(f"--model {model}: a file, not a model folder (the folder with config.json and weights)")


# RoBERTa-like models number positions from padding_idx + 1: that many fewer positions are usable.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "data2vec-text")


def model_positions(model: str) -> int | None:
    """The most tokens the model can take, read from its config offline; None when it cannot be read."""
    try:
        from transformers import AutoConfig

        from lntune.model.load import resolve

        cfg = AutoConfig.from_pretrained(resolve(model), local_files_only=True)
    except Exception:  # noqa: BLE001 - hub ids not cached, odd folders: loading the model reports those
        return None
    n = getattr(cfg, "max_position_embeddings", None)
    if not isinstance(n, int):
        return None
    if getattr(cfg, "model_type", "") in _OFFSET_POSITIONS:
        n -= (getattr(cfg, "pad_token_id", None) or 0) + 1
    return n


def check_max_length(model: str, max_length: int) -> None:
    n = model_positions(model)
    if n is not None and max_length > n:
        raise LntuneError(f"--max-length {max_length}: model {model} takes at most {n} tokens; must be in [1, {n}]")


def check_out(out_dir: str | Path, overwrite: bool = False) -> None:
    """Refuse, before any training, a skin folder that saving would fail on or a finished skin in the way."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SkinError(f"--out {out}: a file is there, and a skin is a folder; choose another --out")
    if (out / SKIN_JSON).exists() and not overwrite:
        raise SkinError(
            f"--out {out}: a finished skin is already there ({SKIN_JSON}); pass --overwrite to replace it, "
            "or choose another --out"
        )
    existing = next(p for p in (out, *out.parents) if p.exists())  # the folder the first new one goes into
    if not existing.is_dir():
        raise SkinError(f"--out {out}: {existing} is a file, so no folder can be made under it; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SkinError(f"--out {out}: cannot write in {existing} (permission denied); choose another --out")
