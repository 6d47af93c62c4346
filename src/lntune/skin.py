"""Skins: only the tuned tensors (safetensors) plus a JSON record of how to rebuild them.

A skin is complete only when skin.json exists and the checksum it records matches
tuned.safetensors; the JSON is written last, so a crash never leaves a skin that loads.

skin.json is checked against one schema (lntune.skin_schema) when it is read and before a skin is saved;
tensors must be finite, and stored masks boolean, the parameter's shape, and as many values as they select.
A skin is data from whoever wrote it: the files its task names are read, but errors about them never show
what those files hold (lntune eval --task names the data instead).
"""
from __future__ import annotations

import hashlib
import json
import re
from contextlib import contextmanager
from pathlib import Path

from lntune import __version__, offline as _offline
from lntune.durable import fsync_dir, make_dir, write_atomic  # noqa: F401 - write_atomic is also imported from here
from lntune.errors import ArchitectureError, DataError, LntuneError, SkinError
from lntune.method import build_method, prepare
from lntune.method.tuning import MASK_PREFIX, Tuning
from lntune.model import LoadedModel, load_model
from lntune.skin_schema import EVAL_NEEDS, FORMAT, BaseRecord, SkinRecord, TaskRecord, check_record
from lntune.spec.files import CHECKPOINT_DIR, HUB_FILES, SKIN_JSON, TENSORS
from lntune.train.validate import check_model, check_out
from lntune.data import get_task
from lntune.skin_card import CARD, model_card

__all__ = ["EVAL_NEEDS", "FORMAT", "SKIN_JSON", "TENSORS", "check_out", "load_skin", "read_skin", "save_skin",
           "skin_task"]


def _sha256(data: bytes | Path) -> str:
    return "sha256:" + hashlib.sha256(data if isinstance(data, bytes) else data.read_bytes()).hexdigest()


REPO = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[\w./-]+))?")  # user/name[@rev]


def resolve_skin(skin: str | Path) -> Path:
    """A local folder as it is; else a Hub repo id, downloaded (huggingface_hub's cache) to a local folder.

    >>> from lntune.skin import resolve_skin
    >>> resolve_skin("runs/sst2-ln")  # a folder that exists, or a repo id when none does  # doctest: +SKIP
    """
    path = Path(skin)
    m = REPO.fullmatch(str(skin))
    if path.exists():
        return path
    near = _nearest_skin(path)
    if near is not None:  # a typo of a folder here, not a Hub repo: say so now, without a download attempt
        raise SkinError(f"{skin}: no such folder; did you mean {near}?")
    if m is None:
        return path

    offline = _offline.hub_offline()
    if offline:
        raise SkinError(f"{skin}: no such local folder, and the Hub (where it would be a repo id) cannot be reached "
                        f"({offline})")
    import huggingface_hub

    try:
        return Path(huggingface_hub.snapshot_download(m["repo"], revision=m["rev"], allow_patterns=HUB_FILES))
    except Exception as e:  # noqa: BLE001 - offline, unknown repo or revision, no access: one line either way
        first = (str(e).splitlines() or [""])[0][:200]
        raise SkinError(f"{skin}: no such local folder, and the Hub repo {m['repo']}"
                        f"{'@' + m['rev'] if m['rev'] else ''} could not be fetched ({type(e).__name__}: {first})"
                        ) from None


def _nearest_skin(path: Path) -> Path | None:
    """The skin folder beside `path` whose name is closest to it (runs/sst2_ln -> runs/sst2-ln), if one is close."""
    import difflib

    parent = path.parent if str(path.parent) else Path(".")
    try:
        names = [p.name for p in parent.iterdir() if (p / SKIN_JSON).is_file()]
    except OSError:
        return None
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return parent / close[0] if close else None


def check_finite(tensors: dict, where: str) -> None:
    """Refuse NaN/inf in any floating tensor: a skin holding them only ever predicts garbage."""
    import torch

    floats = [v.reshape(-1) for v in tensors.values() if v.is_floating_point()]
    if not floats or bool(torch.isfinite(torch.cat(floats)).all()):  # one check: skins are read while serving
        return
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise SkinError(f"{where}: tensor {name} holds {bad} NaN/inf value(s) of {value.numel()}; "
                            "the run diverged (train again with a lower --lr)")


def save_skin(out_dir: str | Path, tuning: Tuning, record: dict) -> Path:
    """Write the tuned tensors and `record` (task, training, metrics) to `out_dir`, replacing a skin there.
    Non-finite tensors and a record the schema refuses are refused before anything is written.

    >>> from lntune import build_method, load_model, prepare, save_skin
    >>> tuning = prepare(load_model("minilm"), build_method("ln"))  # doctest: +SKIP
    >>> save_skin("runs/untrained-ln", tuning, record)  # record: what train_task writes  # doctest: +SKIP
    """
    from safetensors.torch import save

    out = Path(out_dir)
    check_out(out, overwrite=True)  # a clear error rather than mkdir's FileExistsError
    tuning.method.finalize(tuning)
    state = tuning.state()
    check_finite(state, f"{out}: not saved")
    lm = tuning.lm
    meta = {
        "format": FORMAT,
        "lntune": __version__,
        "method": tuning.method.name,
        "options": tuning.method.options(),  # as asked for
        "rebuild": tuning.method.skin_options(),  # what load_skin constructs
        "base": {"model": lm.model_id, "fingerprint": lm.fingerprint, "dtype": lm.dtype, "head": lm.head,
                 "source": lm.source or {"kind": "in memory"}},
        "tuned": [t.name for t in tuning.tuned],
        "head": [t.name for t in tuning.head],
        "counts": tuning.counts(),
        "tensors_sha256": "sha256:" + "0" * 64,  # set once the tensors are written
        **record,
    }
    task = record.get("task")
    if isinstance(task, dict) and str(task.get("name", "")).partition(":")[0] in _SPEC_KINDS:
        meta["data_root"] = str(Path.cwd().resolve())  # relative paths in its spec were given from here
    checked = check_record(meta, f"{out / SKIN_JSON} (not saved)")
    unknown = sorted(checked.model_extra or {})  # readers keep unknown keys (a newer lntune's); a writer adds none
    if unknown:
        raise SkinError(f"{out / SKIN_JSON} (not saved): {', '.join(map(repr, unknown))} is not a skin.json key "
                        "(lntune.skin_schema.SkinRecord lists them); misspelt, or add it to SkinRecord first")
    new = [p for p in (out, *out.parents) if not p.exists()]
    make_dir(out)
    for folder in reversed(new):
        fsync_dir(folder.parent)  # the new folders' own entries

    for old in (SKIN_JSON, CARD):  # the old record and card must not vouch for new tensors
        (out / old).unlink(missing_ok=True)
    write_atomic(out / TENSORS, save(state))  # its folder fsync makes the unlink durable first
    meta["tensors_sha256"] = _sha256(out / TENSORS)
    write_atomic(out / SKIN_JSON, json.dumps(meta, indent=2).encode())
    write_atomic(out / CARD, model_card(checked).encode())  # for the Hub (lntune push) and for readers
    return out


def read_skin(skin_dir: str | Path, require: tuple[str, ...] = ()) -> SkinRecord:
    """skin.json, checked against the schema; `require`: dotted keys a caller needs (EVAL_NEEDS to evaluate)."""
    path = Path(skin_dir) / SKIN_JSON
    if not path.exists():
        if (Path(skin_dir) / CHECKPOINT_DIR).is_dir():
            raise SkinError(f"{skin_dir}: no {SKIN_JSON}: its training was interrupted; lntune train --resume "
                            f"{skin_dir} continues it from its last checkpoint")
        raise SkinError(f"{skin_dir}: no {SKIN_JSON}; not a skin directory, or training did not finish (train again)")
    try:
        meta = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise SkinError(f"{path}: not valid JSON ({e}); the skin is corrupt, train it again") from None
    except OSError as e:
        raise SkinError(f"{path}: cannot read it ({e.strerror or e})") from None
    return check_record(meta, path, require)


def _read_tensors(skin_dir: Path, meta: SkinRecord) -> dict:
    """The skin's tensors, checked: the checksum skin.json records, finite values, masks that fit their values."""
    from safetensors.torch import load

    path = Path(skin_dir) / TENSORS
    if not path.exists():
        raise SkinError(f"{path}: missing; the skin is incomplete, train it again")
    data = path.read_bytes()  # once, for the checksum and the tensors: a server adds skins while it generates
    if _sha256(data) != meta.tensors_sha256:
        raise SkinError(f"{path}: checksum differs from {SKIN_JSON}; the file is corrupt or was replaced")
    try:
        tensors = load(data)  # from bytes: a quarter of load_file's time on a skin's many small tensors
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for a malformed file
        raise SkinError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e}); train it again") \
            from None
    for name, value in tensors.items():  # an integer copy of a gain would load and change every prediction
        if not name.startswith(MASK_PREFIX) and not value.is_floating_point():
            raise SkinError(f"{path}: tensor {name} is {str(value.dtype).removeprefix('torch.')}; a skin's tuned "
                            "tensors are floating point: the file was edited or is not a skin, train it again")
    check_finite(tensors, str(path))
    _check_masks(path, tensors)
    return tensors


def _check_masks(path: Path, tensors: dict) -> None:
    import torch

    for key, mask in tensors.items():
        if not key.startswith(MASK_PREFIX):
            continue
        name = key[len(MASK_PREFIX):]
        if mask.dtype != torch.bool:
            raise SkinError(f"{path}: mask {key} is {str(mask.dtype).removeprefix('torch.')}; a mask must be bool")
        value = tensors.get(name)
        if value is None:
            raise SkinError(f"{path}: mask {key} masks no tensor (no {name} in the file)")
        if value.dim() != 1 or value.numel() != int(mask.sum()):
            raise SkinError(f"{path}: {name} holds {tuple(value.shape)} values, but its mask selects "
                            f"{int(mask.sum())} elements; the skin is corrupt, train it again")


def load_skin(skin_dir: str | Path, model: str | None = None, norm_map: dict | None = None,
              require: tuple[str, ...] = ()) -> tuple[Tuning, SkinRecord]:
    """Load the skin's base model (or `model`), check it is the same base, and apply the skin; returns the tuning
    and skin.json's typed record.

    >>> from lntune import load_skin
    >>> tuning, meta = load_skin("runs/sst2-ln")  # doctest: +SKIP
    >>> meta.method, meta.task.name, tuning.lm.head  # doctest: +SKIP
    ('ln', 'classification')
    """
    skin_dir = resolve_skin(skin_dir)  # a folder, or a Hub repo id (user/name@revision)
    meta = read_skin(skin_dir, require)
    tensors = _read_tensors(skin_dir, meta)
    base, labels = meta.base, meta.labels
    if model is not None:
        lm = load_model(model, base.head, max(len(labels), 1), base.dtype, norm_map)
    else:
        lm = _load_base(skin_dir, base, max(len(labels), 1), norm_map)
    return apply_skin(lm, skin_dir, meta, tensors), meta


def _load_base(skin_dir: Path, base: BaseRecord, num_labels: int, norm_map: dict | None) -> LoadedModel:
    """The base model the skin names. Its name comes from the skin: a local folder that fails to load is
    named, but what transformers says about the files in it is not repeated (it may quote them)."""
    name, where = base.model, f"{skin_dir / SKIN_JSON}: base.model {base.model!r}"
    fix = "pass --model with the base model this skin was trained on"
    try:
        check_model(name)
    except LntuneError:
        raise SkinError(f"{where} is not a model folder (a file, or a folder without config.json); {fix}") from None
    try:
        return load_model(name, base.head, num_labels, base.dtype, norm_map)
    except ArchitectureError:
        raise  # unlabelled norms: the message names modules and says how to map them
    except Exception as e:  # noqa: BLE001 - any other loading failure is a base the skin names that will not load
        local = Path(name).exists()
        detail = type(e).__name__ if local else str(e).splitlines()[0]
        raise SkinError(f"{where} could not be loaded ({detail}); {fix}") from None


def apply_skin(lm: LoadedModel, skin_dir: Path, meta: SkinRecord, tensors: dict) -> Tuning:
    skin_dir = Path(skin_dir)
    base = meta.base
    if lm.fingerprint != base.fingerprint:
        raise SkinError(
            f"{skin_dir}: this skin was trained on {base.model!r} (weights {base.fingerprint[:19]}…), "
            f"but the model given ({lm.model_id!r}) has weights {lm.fingerprint[:19]}…; "
            f"load it onto the model it was trained on (--model {base.model})"
        )
    masks = {k[len(MASK_PREFIX):]: v for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
    try:
        tuning = prepare(lm, build_method(meta.method, **meta.rebuild), only=meta.tuned, masks=masks)
    except (LntuneError, TypeError, ValueError) as e:
        raise SkinError(f"{skin_dir / SKIN_JSON}: method {meta.method} cannot be rebuilt from its options: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    for t in tuning.all:
        if t.mask is not None and t.name in masks and tuple(t.mask.shape) != tuple(t.param.shape):
            raise SkinError(f"{skin_dir / TENSORS}: mask {MASK_PREFIX}{t.name} has shape {tuple(t.mask.shape)}, "
                            f"the parameter has {tuple(t.param.shape)}; the skin is corrupt or for another model")
    expected = tuning.state_keys()  # state() would copy every tuned tensor (all of them for full FT)
    if set(tensors) != expected:
        extra, missing = sorted(set(tensors) - expected), sorted(expected - set(tensors))
        raise SkinError(f"{skin_dir / TENSORS}: tensors do not match the method (unexpected {extra[:3]}, missing {missing[:3]})")
    tuning.load_state(tensors, str(skin_dir / TENSORS))
    return tuning


# --- the task a skin is evaluated on ------------------------------------------------------------------------

_SPEC_KINDS = ("local", "conll")  # tasks whose spec names files (lntune.data.SPEC_TASKS)
_SPLITS = ("train", "dev", "test")


def _spec_files(name: str) -> tuple[str, list[str]]:
    """(kind, the paths a local:/conll: spec names, as written); kind "" for a registered task."""
    kind, _, spec = name.partition(":")
    if kind not in _SPEC_KINDS:
        return "", []
    parts = spec.split(",") if "=" in spec else [spec]  # conll:DIR may hold commas (lntune.data.ner)
    files = []
    for part in parts:
        key, eq, value = part.partition("=")
        if eq and key in _SPLITS:
            files.append(value)
        elif not eq and kind == "conll":
            files.append(part)
    return kind, files


def _rebase(name: str, root: Path) -> str:
    """`name` with each relative path of its spec joined to `root`."""
    kind, _, spec = name.partition(":")
    split = "=" in spec
    parts = spec.split(",") if split else [spec]
    out = []
    for part in parts:
        key, eq, value = part.partition("=")
        if eq and key in _SPLITS and value and not Path(value).is_absolute():
            part = f"{key}={root / value}"
        elif not eq and kind == "conll" and part and not Path(part).is_absolute():
            part = str(root / part)
        out.append(part)
    return f"{kind}:{','.join(out)}"


def _skin_spec(skin_dir: Path, meta: SkinRecord) -> str:
    """The skin's task name, relative file paths resolved against the folder they were given from (data_root,
    recorded by save_skin); a skin without one, or whose folder is not here, reads them from the current one."""
    name = meta.task.name
    root = meta.data_root
    if root and _spec_files(name)[0] and Path(root).is_dir() and not set(",=") & set(root):
        return _rebase(name, Path(root))
    return name


# What a DataError about a file says, reduced to words that hold nothing of the file.
def _hidden(skin_json: Path, name: str) -> str:
    """One account of any DataError about a file the skin named, the same whether the file is missing, unreadable
    or not a task file: the user did not type the path, so the answer must not say whether something is there."""
    _, files = _spec_files(name)
    where = ", ".join(dict.fromkeys(str(Path(f)) for f in files if f)) or "the files it names"
    return (f"{skin_json}: the task this skin names cannot be read from {where} (a file is missing, unreadable or "
            "not in the form the spec gives; the skin named the files, not you, so which is not said); check "
            "them, or pass --task SPEC to evaluate on data you name")


@contextmanager
def skin_task(skin_dir: str | Path, meta: SkinRecord, task: str | None = None):
    """The task to evaluate a skin on, as a context: `task` (given now, e.g. lntune eval --task) must have
    the skin's head and labels; without it, the skin's own task, whose relative file paths are resolved
    against its data_root. Within the context, a DataError about a file the skin's own task names becomes a
    SkinError that names the file and the kind of problem but shows nothing the file holds."""
    skin_json = Path(skin_dir) / SKIN_JSON
    if task is None and meta.imported:
        raise SkinError(f"{skin_json}: this skin was imported (from {meta.imported.get('from', 'a PEFT adapter')}) "
                        "and records no task data; pass --task NAME to evaluate it on a task, e.g. --task sst2")
    if task is not None:
        t = get_task(task)  # named by the user now: its errors are theirs to read in full
        _check_fits(t, meta.task, f"--task {task}", skin_json)
        yield t
        return
    name = _skin_spec(Path(skin_dir), meta)
    if not _spec_files(name)[0]:  # a registered task: its files are found in the data directory given now
        try:
            t = get_task(name)
        except DataError as e:
            raise SkinError(f"{skin_json}: task.name: {e}; pass --task to evaluate on a task this lntune has") \
                from None
        _check_fits(t, meta.task, f"task {t.name}", skin_json)
        yield t
        return
    try:
        t = get_task(name)
        _check_fits(t, meta.task, "the task it names", skin_json, show_file_labels=False)
        yield t
    except DataError as e:
        # Problems with the spec itself quote only the spec (from skin.json); a file path can't start with it.
        if str(e).startswith((f"task '{name}'", f"task {name}:")):
            raise SkinError(f"{skin_json}: task.name: {e}") from None
        raise SkinError(_hidden(skin_json, name)) from None


def _check_fits(t, recorded: TaskRecord | None, what: str, skin_json: Path, show_file_labels: bool = True) -> None:
    """The skin's head reads `t`'s labels by index: the head and the label list must be the skin's."""
    if recorded is None:  # an imported skin records no task: any task of its head's width may be asked for
        return
    head = recorded.head
    if head and t.head != head:
        raise SkinError(f"{skin_json}: the skin has a {head} head; {what} is a {t.head} task")
    labels = list(recorded.labels)
    if labels and list(t.labels) != labels:
        got = f" {list(t.labels)}" if show_file_labels else ""
        raise SkinError(f"{skin_json}: the skin was trained on labels {labels}; {what} has {len(t.labels)} "
                        f"label(s){got}, and the head reads labels by position")
