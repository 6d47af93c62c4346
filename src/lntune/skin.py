"""Skins: only the tuned tensors (safetensors) plus a JSON record of how to rebuild them.

A skin is complete only when skin.json exists and the checksum it records matches
tuned.safetensors; the JSON is written last, so a crash never leaves a skin that loads.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from lntune import __version__
from lntune.errors import SkinError
from lntune.method import build_method, prepare
from lntune.method.tuning import MASK_PREFIX, Tuning
from lntune.model import LoadedModel, load_model

SKIN_JSON = "skin.json"
TENSORS = "tuned.safetensors"
FORMAT = "lntune-skin/1"


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename over `path`, fsync the folder: after a crash `path` holds the old bytes or
    the new ones, and a file written after it (skin.json after the tensors) never reaches disk first."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make renames, unlinks and new entries in `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # no directory handles (Windows): the files themselves are synced
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot sync a folder; the same holds
        pass
    finally:
        os.close(fd)


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


def save_skin(out_dir: str | Path, tuning: Tuning, record: dict) -> Path:
    """Write the tuned tensors and `record` (task, training, metrics) to `out_dir`, replacing a skin there."""
    from safetensors.torch import save

    out = Path(out_dir)
    check_out(out, overwrite=True)  # a clear error rather than mkdir's FileExistsError
    new = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    for folder in reversed(new):
        fsync_dir(folder.parent)  # the new folders' own entries
    (out / SKIN_JSON).unlink(missing_ok=True)  # the old record must not vouch for new tensors
    tuning.method.finalize(tuning)
    write_atomic(out / TENSORS, save(tuning.state()))  # its folder fsync makes the unlink durable first
    lm = tuning.lm
    meta = {
        "format": FORMAT,
        "lntune": __version__,
        "method": tuning.method.name,
        "options": tuning.method.options(),  # as asked for
        "rebuild": tuning.method.skin_options(),  # what load_skin constructs
        "base": {"model": lm.model_id, "fingerprint": lm.fingerprint, "dtype": lm.dtype, "head": lm.head},
        "tuned": [t.name for t in tuning.tuned],
        "head": [t.name for t in tuning.head],
        "counts": tuning.counts(),
        "tensors_sha256": _sha256(out / TENSORS),
        **record,
    }
    write_atomic(out / SKIN_JSON, json.dumps(meta, indent=2).encode())
    return out


def read_skin(skin_dir: str | Path) -> dict:
    path = Path(skin_dir) / SKIN_JSON
    if not path.exists():
        raise SkinError(f"{skin_dir}: no {SKIN_JSON}; not a skin directory, or training did not finish (train again)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SkinError(f"{path}: not valid JSON ({e}); the skin is corrupt, train it again") from e
    if meta.get("format") != FORMAT:
        raise SkinError(f"{path}: format {meta.get('format')!r}, this lntune reads {FORMAT}")
    return meta


def _read_tensors(skin_dir: Path, meta: dict) -> dict:
    from safetensors.torch import load_file

    path = skin_dir / TENSORS
    if not path.exists():
        raise SkinError(f"{path}: missing; the skin is incomplete, train it again")
    if _sha256(path) != meta["tensors_sha256"]:
        raise SkinError(f"{path}: checksum differs from {SKIN_JSON}; the file is corrupt or was replaced")
    return load_file(str(path))


def load_skin(skin_dir: str | Path, model: str | None = None, norm_map: dict | None = None) -> tuple[Tuning, dict]:
    """Load the skin's base model (or `model`), check it is the same base, and apply the skin."""
    skin_dir = Path(skin_dir)
    meta = read_skin(skin_dir)
    tensors = _read_tensors(skin_dir, meta)
    base = meta["base"]
    labels = meta.get("task", {}).get("labels") or []
    lm = load_model(model or base["model"], base["head"], max(len(labels), 1), base["dtype"], norm_map)
    return apply_skin(lm, skin_dir, meta, tensors), meta


def apply_skin(lm: LoadedModel, skin_dir: Path, meta: dict, tensors: dict) -> Tuning:
    base = meta["base"]
    if lm.fingerprint != base["fingerprint"]:
        raise SkinError(
            f"{skin_dir}: this skin was trained on {base['model']!r} (weights {base['fingerprint'][:19]}…), "
            f"but the model given ({lm.model_id!r}) has weights {lm.fingerprint[:19]}…; "
            f"load it onto the model it was trained on (--model {base['model']})"
        )
    masks = {k[len(MASK_PREFIX):]: v for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
    tuning = prepare(lm, build_method(meta["method"], **meta["rebuild"]), only=meta["tuned"], masks=masks)
    expected = tuning.state_keys()  # state() would copy every tuned tensor (all of them for full FT)
    if set(tensors) != expected:
        extra, missing = sorted(set(tensors) - expected), sorted(expected - set(tensors))
        raise SkinError(f"{skin_dir / TENSORS}: tensors do not match the method (unexpected {extra[:3]}, missing {missing[:3]})")
    tuning.load_state(tensors, str(skin_dir / TENSORS))
    return tuning
