"""Reading a skin for mixed serving: every way a damaged, crafted or mismatched skin can fail becomes one
SkinError naming the file, before any table of the bank is touched; what passes is a Skin of full tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from lntune.errors import SkinError
from lntune.heads import HEADS, get_head
from lntune.method import METHODS
from lntune.method.tuning import MASK_PREFIX
from lntune.model import LoadedModel
from lntune.skin import SKIN_JSON, TENSORS, _read_tensors, read_skin
from lntune.skin_schema import SkinRecord, TaskRecord
from lntune.data import TASKS



@dataclass
class Skin:
    """One skin, expanded to full tensors: untuned elements hold the base values."""

    name: str
    path: Path
    meta: SkinRecord  # typed and strict: a crafted skin.json is a SkinError (HTTP 422) before any use
    norms: dict[str, torch.Tensor]  # tuned tensor name ("<norm path>.weight" or ".bias") -> full [d] values
    heads: dict[str, torch.Tensor]  # head parameter name -> tensor
    outputs: int  # width of the head: labels, or 1 for regression; 0 for a causal LM (it has no task head)

    @property
    def task(self) -> TaskRecord | None:
        return self.meta.task

    @property
    def head(self) -> str:
        return self.meta.base.head

    @property
    def labels(self) -> list[str]:
        return self.meta.labels or [str(i) for i in range(self.outputs)]

    @property
    def sentences(self) -> int | None:
        """1 or 2: the texts per input the skin was trained on; None when the skin does not say."""
        return _sentences(self.task)

    def info(self) -> dict:
        # finite numbers only: a NaN in skin.json would make every GET /skins answer invalid JSON
        metrics = {k: v for k, v in (self.meta.metrics or {}).items()
                   if isinstance(v, (int, float)) and math.isfinite(v)}
        counts = {k: v for k, v in (self.meta.counts or {}).items() if isinstance(v, int)}
        return {"name": self.name, "path": str(self.path), "task": self.task and self.task.name, "head": self.head,
                "labels": get_head(self.head).labels_shown(self.labels), "counts": counts,
                "metrics": metrics, "sentences": self.sentences}


def _sentences(task: TaskRecord | None) -> int | None:
    if task is None:
        return None
    columns = task.text_columns
    if columns is not None and len(columns) in (1, 2):  # recorded with the skin
        return len(columns)
    name = task.name
    kind, sep, spec = name.partition(":")
    if sep and kind == "local":  # the spec's text=A or text=A+B; never open the files it names
        fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
        return len(fields["text"].split("+")) if fields.get("text") else None

    columns = getattr(TASKS.get(name), "text_columns", None)
    return len(columns) if columns else None


def _refuse(path: Path, why: str) -> SkinError:
    return SkinError(f"{path}: {why}")


def _read_checked(path: Path) -> tuple[SkinRecord, dict]:
    """skin.json and the tensors, with every way a damaged or crafted file can fail turned into a SkinError.
    read_skin's strict schema types every field serving reads (names are strings, base.head a known head, ...)."""
    try:
        meta = read_skin(path)
        tensors = _read_tensors(path, meta)
    except SkinError:
        raise
    except Exception as e:  # safetensors' own error, OSError for a folder named skin.json, RecursionError, ...
        raise _refuse(path, f"unreadable skin: {SKIN_JSON} or {TENSORS} ({type(e).__name__}: {e})") from e
    # read_skin and _read_tensors refuse NaN/inf tensors, masks that do not fit, and a wrong checksum
    return meta, tensors


def read_ln_skin(lm: LoadedModel, name: str, path: str | Path, bases: dict[str, torch.Tensor] | None = None) -> Skin:
    """Read and check a skin for mixed serving on `lm`; the model is not touched. `bases`: norm_bases(lm),
    computed once by a bank that reads many skins."""
    path = Path(path)
    meta, tensors = _read_checked(path)
    base = meta.base
    if not getattr(METHODS.get(meta.method), "serves_mixed", False):
        mixed = " or ".join(name for name, m in METHODS.items() if m.serves_mixed)
        raise _refuse(path, f"method {meta.method!r}; mixed serving takes LN-tuning skins only (method {mixed}, "
                            "masked or not), whose tensors are norm gains and biases. Evaluate other skins alone "
                            "with lntune eval")
    if base.head not in HEADS:
        raise _refuse(path, f"head {base.head!r}; lntune serve answers {', '.join(HEADS)} skins only")
    if HEADS[base.head].bank_head != get_head(lm.head).bank_head:  # one model answers both sequence heads
        raise _refuse(path, f"a {base.head} skin, but this bank serves {lm.head} skins (its model was loaded "
                            f"with a {lm.head} head); serve it from a bank of its kind (SkinBank(..., "
                            f"head={base.head!r}); lntune serve picks it from the first --skin)")
    if lm.fingerprint != base.fingerprint:
        raise _refuse(path, f"this skin was trained on {base.model!r} (weights {base.fingerprint[:19]}…), "
                            f"but the bank's model ({lm.model_id!r}) has weights {lm.fingerprint[:19]}…; serve it "
                            f"on the model it was trained on (--model {base.model})")
    if set(meta.head) != set(lm.head_names):
        raise _refuse(path, f"head tensors {meta.head} differ from the bank model's {list(lm.head_names)}")
    norms = _norm_values(norm_bases(lm) if bases is None else bases, path, meta.tuned, tensors)
    head = _head_values(lm, path, meta.head, tensors)
    known = set(meta.tuned) | set(meta.head) | {MASK_PREFIX + n for n in meta.tuned}
    if set(tensors) - known:
        raise _refuse(path, f"unexpected tensors {sorted(set(tensors) - known)[:3]}; the skin is not plain LN-tuning")
    outputs = head[sorted(n for n in head if n.endswith(".weight"))[-1]].shape[0] if head else 0
    misfit = HEADS[base.head].check_outputs(meta.labels, outputs)
    if misfit:
        raise _refuse(path, misfit)
    return Skin(name, path, meta, norms, head, outputs)


def _head_values(lm: LoadedModel, path: Path, names: list[str], tensors: dict) -> dict[str, torch.Tensor]:
    if not names:  # a causal LM has no task head
        return {}
    params = dict(lm.model.named_parameters())
    head = {}
    for n in names:
        if n not in tensors:
            raise _refuse(path, f"head tensor {n} is missing; the skin is incomplete, train it again")
        t, want = tensors[n], params[n]
        if t.dim() != want.dim() or t.shape[1:] != want.shape[1:]:
            raise _refuse(path, f"head tensor {n} has shape {tuple(t.shape)}, the model's is {tuple(want.shape)}")
        head[n] = t.to(want.dtype)
    # every head layer answers one row per output (weight rows = bias length), at least one:
    # a mismatch would only show as a shape error in the middle of a mixed batch
    widths = {t.shape[0] for t in head.values() if t.dim() >= 1}
    if names and (len(widths) != 1 or 0 in widths):  # a causal LM has no task head: names is empty
        raise _refuse(path, f"head tensors of {sorted(widths)} outputs; a head has one width of at least 1")
    return head


def norm_bases(lm: LoadedModel) -> dict[str, torch.Tensor]:
    """The base value of every norm gain and bias a skin may tune, by tensor name, on the CPU (where skins load)."""
    return {f"{s.name}.{a}": getattr(s.module, a).detach().cpu() for s in lm.norms for a in ("weight", "bias")
            if getattr(s.module, a, None) is not None}


def _norm_values(bases: dict[str, torch.Tensor], path: Path, tuned: list[str], tensors: dict) -> dict:
    norms: dict[str, torch.Tensor] = {}
    for name in tuned:
        base = bases.get(name)
        if base is None:
            raise _refuse(path, f"tuned tensor {name} is not the gain or bias of a norm of this model")
        if name not in tensors:
            raise _refuse(path, f"tensor {name} is missing; the skin is incomplete, train it again")
        value, mask = tensors[name].to(base.dtype), tensors.get(MASK_PREFIX + name)
        if mask is not None and mask.dtype != torch.bool:
            raise _refuse(path, f"mask of {name} is {mask.dtype}, not bool")
        if mask is None:
            if value.shape != base.shape:
                raise _refuse(path, f"{name} has shape {tuple(value.shape)}, the model's is {tuple(base.shape)}")
            norms[name] = value  # the file's own tensor: the bank copies it into its table
        else:
            if mask.shape != base.shape or int(mask.sum()) != value.numel():
                raise _refuse(path, f"{name}: mask and values do not match the model's {tuple(base.shape)}")
            norms[name] = base.clone()
            norms[name][mask] = value.reshape(-1)  # elements outside the mask keep the base values, as load_skin does
    return norms
