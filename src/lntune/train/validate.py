"""What a run needs checked before it loads anything: dtype, norm map, model folder, positions, output folder.
The rules of the training options themselves live on TrainConfig's fields (lntune.spec.train), so the CLI, the
Python API and sweep YAMLs refuse the same values with the same words."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from lntune.errors import LntuneError, SkinError
from lntune.spec.files import SKIN_JSON
from lntune.spec.rules import Rule, either
from lntune.spec.train import TRACKERS  # noqa: F401  (also imported from here)
from lntune.model.archmap import LABELS
from lntune.model.embedded import package_dir
from lntune.model.load import resolve

ALIASES = ("minilm", "smollm2")  # lntune.model.load.resolve maps these to embedded models
DTYPE_NAMES = ("float32", "bfloat16", "float16")


def flag(name: str) -> str:
    """A run option (RUN_RULES) as `lntune train` spells it."""
    return "--" + name.replace("_", "-")


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
        raise LntuneError(f"--dtype {dtype!r}: choose {either(DTYPE_NAMES)}")


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
    if value is None:
        return
    if not isinstance(value, dict):
        raise LntuneError(f"--norm-map: expected a JSON object, got {type(value).__name__}; {_NORM_MAP_FORM}")
    for pattern, label in value.items():
        if label not in LABELS:
            raise LntuneError(f"--norm-map: label {label!r} for {pattern!r}: choose {either(LABELS)}")
        try:
            re.compile(pattern)
        except (re.error, TypeError) as e:
            raise LntuneError(f"--norm-map: {pattern!r} is not a regular expression ({e})") from None


_NORM_MAP_FORM = 'give an object of name regex -> mha|ffn|embeddings|final, e.g. \'{"norm_a$": "mha"}\''


def check_model(model: str) -> None:
    """A --model that names a local file or folder must be a model folder (config.json); hub ids pass."""
    if model in ALIASES:
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
    try:  # os.access says yes to root everywhere, /proc and read-only mounts included: make a folder to know
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".lntune-probe-"))
    except OSError as e:
        raise SkinError(f"--out {out}: cannot make a folder in {existing} ({e.strerror or e}); choose another "
                        "--out") from None
