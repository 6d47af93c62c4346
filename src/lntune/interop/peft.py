"""Skins as PEFT adapters and back: LN skins <-> PEFT LN_TUNING, LoRA skins <-> PEFT LoRA.

PEFT itself builds and saves (get_peft_model + save_pretrained) and loads (PeftModel.from_pretrained), so
the files are PEFT's own format by construction; this module only moves tensors between the two module
layouts. LN_TUNING keeps a whole copy of each tuned norm, so term-only and element-masked skins are written
as full tensors (the untuned elements at the base's values). The task head goes in `modules_to_save`."""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from lntune.errors import LntuneError, SkinError
from lntune.heads import get_head, peft_head
from lntune.method import build_method, METHODS, parts, prepare
from lntune.model.embedded import ORIGIN, hub_id
from lntune.skin_schema import SkinRecord
from lntune.model import load_model
from lntune.skin import check_out, load_skin, read_skin, save_skin
from lntune.skin_card import card_data, NOT_RESULTS

ADAPTER = "default"  # the adapter name PEFT saves at the top of the folder
NOTE = "lntune.json"  # beside an exported adapter: the task head and labels PEFT's config has no place for


def _peft(*names: str) -> tuple:
    """Names from PEFT, an optional dependency: without it, one line that says how to install it."""
    try:
        import peft  # optional: only export and import need it
    except ModuleNotFoundError:
        raise LntuneError("PEFT interop needs the peft package: pip install 'lntune[interop]' (or pip install peft)") \
            from None
    return tuple(getattr(peft, n) for n in names)


def _by_peft_type(kind: str) -> str:
    """The method a PEFT adapter of type `kind` imports as (the one whose Method.peft_type it is)."""
    return next(name for name, m in METHODS.items() if m.peft_type == kind)


def _peft_type(method: str) -> str | None:
    """The PEFT adapter type a skin of `method` exports as: a lone method's (Method.peft_type), else None."""
    methods = parts(method)
    return methods[0].peft_type if len(methods) == 1 else None


def _modules(names: list[str]) -> list[str]:
    """Parameter names -> their modules, in order, once each."""
    return list(dict.fromkeys(n.rpartition(".")[0] for n in names))


def _exact(modules: list[str]) -> str:
    # PEFT full-matches a string target_modules against every module name: exactly these modules.
    import re

    return "^(" + "|".join(re.escape(m) for m in modules) + ")$"


def _fresh(base: str, head: str, labels: list[str], dtype: str = "float32"):
    """A skin's base model as loaded for training, before any method touched it."""
    return load_model(base, head, max(len(labels), 1), dtype)


def _fresh_of(meta: SkinRecord, model: str | None):
    """The base model `meta` names (or `model`), fresh."""
    return _fresh(model or meta.base.model, meta.base.head, meta.labels, meta.base.dtype)


def export_peft(skin: str | Path, out: str | Path, model: str | None = None, overwrite: bool = False) -> Path:
    """Write SKIN as a PEFT adapter folder OUT (adapter_config.json + adapter_model.safetensors).

    >>> from lntune.interop import export_peft
    >>> export_peft("runs/sst2-ln", "runs/sst2-ln-peft")  # doctest: +SKIP
    >>> # then: PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base), "runs/sst2-ln-peft")
    """
    (get_peft_model,) = _peft("get_peft_model")

    out = Path(out)
    _check_out(out, overwrite)
    meta = read_skin(skin)
    method = meta.method
    kind = _peft_type(method)
    if kind is None:
        formats = ", ".join(f"{m.peft_type} for {name}" for name, m in METHODS.items() if m.peft_type)
        mergeable = ", ".join(name for name, m in METHODS.items() if m.merge is not None)
        raise SkinError(f"{skin}: a {method} skin has no PEFT format (PEFT has {formats}); "
                        f"lntune merge writes a plain transformers folder for {mergeable} skins")
    tuning, meta = load_skin(skin, model)
    skinned = tuning.lm.model
    lm = _fresh_of(meta, model)
    head = _modules(meta.head)
    config, targets = _peft_config(kind, meta, head, get_head(lm.head).peft_task_type)
    with _quiet():
        peft_model = get_peft_model(lm.model, config)
    # After get_peft_model, which sets the id to the folder the base was loaded from (a path on this machine).
    base_id, weights = _base_of(meta.base.model, meta.base.source)
    peft_model.peft_config[ADAPTER].base_model_name_or_path = base_id
    saved = peft_model.peft_config[ADAPTER].modules_to_save  # PEFT appends its task's defaults to ours: once each
    if saved:
        peft_model.peft_config[ADAPTER].modules_to_save = list(dict.fromkeys(saved))
    _copy_tuned(peft_model.base_model.model, skinned, kind, targets, head)
    note = {"head": lm.head, "labels": meta.labels, "method": method,
            "base": meta.base.model, "base_weights": weights, "from_skin": str(Path(skin).resolve())}
    # The weights statement goes here and in the card, not into adapter_config.json: PEFT warns about every
    # key it does not know each time the adapter loads.
    _write(peft_model, out, {NOTE: json.dumps(note, indent=1), "README.md": _card(meta, base_id, weights, kind)})
    return out


def _peft_config(kind: str, meta: SkinRecord, head: list[str], task_type: str | None) -> tuple[Any, list[str]]:
    """(PEFT's config of the skin's adapter, the modules it targets)."""
    LNTuningConfig, LoraConfig = _peft("LNTuningConfig", "LoraConfig")
    if kind == "LN_TUNING":
        targets = _modules(meta.tuned)
        return LNTuningConfig(target_modules=_exact(targets), modules_to_save=list(head) or None,
                              task_type=task_type), targets
    opts = meta.rebuild
    targets = [t.rpartition(".lora")[0] for t in _modules([n for n in meta.tuned if n.endswith(".lora.A")])]
    return LoraConfig(r=opts["r"], lora_alpha=opts["alpha"], lora_dropout=0.0, bias="none",
                      target_modules=_exact(targets), modules_to_save=list(head) or None, task_type=task_type), targets


def _copy_tuned(inner, skinned, kind: str, targets: list[str], head: list[str]) -> None:
    """The skin's tuned tensors and head into PEFT's adapter modules of the fresh base."""
    with torch.no_grad():
        for name in targets:
            layer, source = inner.get_submodule(name), skinned.get_submodule(name)
            if kind == "LN_TUNING":
                layer.ln_tuning_layers[ADAPTER].load_state_dict(source.state_dict())
            else:
                layer.lora_A[ADAPTER].weight.copy_(source.lora.A)
                layer.lora_B[ADAPTER].weight.copy_(source.lora.B)
        for name in head:
            wrapper = inner.get_submodule(name)
            wrapper.modules_to_save[ADAPTER].load_state_dict(skinned.get_submodule(name).state_dict())


@contextmanager
def _quiet():
    """PEFT warns "Unsupported layer type LayerNorm ... at your own risk" for every norm LN_TUNING wraps, which is
    what LN_TUNING is for, and transformers tells PEFT (not the user) that `is_gradient_checkpointing` is
    deprecated: those two are dropped, every other warning is kept."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unsupported layer type", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        yield


def _base_of(model: str, source: dict | None) -> tuple[str, str]:
    """(the base id the adapter names, one sentence on which weights it was trained on). An embedded model names
    its Hub id even where its weights are not the Hub's (SmolLM2 is a dequantised GGUF); the sentence says so."""
    source = source or {}
    if hub_id(source):
        return hub_id(source), f"the Hub's {hub_id(source)} weights"
    if source.get("kind") == "embedded":
        return source["hub_id"], (f"the {source['package']} {source.get('version') or ''} package's weights, not the "
                                  f"Hub's: a quantised copy of {source['hub_id']}, dequantised, so outputs on the Hub's "
                                  f"weights differ slightly; lntune --model {model} loads the exact "
                                  "base").replace("  ", " ")
    return model, f"the local model {model} (not on the Hub)"


def _card(meta: SkinRecord, base_id: str, weights: str, kind: str) -> str:
    """README.md of an exported adapter: lntune's card, not PEFT's empty template."""
    labels, task_name = meta.labels, meta.task.name if meta.task else None
    # The base with its head shaped as at training (AutoPeftModel would build a 2-label head whatever the task).
    head = get_head(meta.base.head)
    shape = "".join(f", {k}={v!r}" for k, v in head.model_kwargs(len(labels)).items())
    load = (f"from peft import PeftModel\nfrom transformers import {head.auto_class}\n\n"
            f"base = {head.auto_class}.from_pretrained({base_id!r}{shape})\n"
            "model = PeftModel.from_pretrained(base, \"PATH_OR_REPO_ID\")").replace("'", '"')
    metrics = {k: v for k, v in (meta.metrics or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in NOT_RESULTS}
    data = card_data(base_model=base_id, library="peft", tags=["lntune", "peft", kind.lower().replace("_", "-")],
                     model=meta.base.model, head=meta.base.head, method=meta.method, task=task_name,
                     metrics=meta.metrics)
    body = [f"# {task_name or 'adapter'} — {meta.method} ({kind}), exported by lntune", "",
            f"A PEFT {kind} adapter of `{base_id}`, trained with lntune ({meta.method}) "
            f"on {task_name or 'a task it does not name'}.", "",
            f"**Base weights.** Trained on {weights}.", "", "## Use", "", "```python", load, "```", ""]
    if labels:
        body += [f"Labels by output index: {', '.join(f'{i} {n}' for i, n in enumerate(labels))}.", ""]
    if metrics:
        body += ["Validation metrics at export: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + ".", ""]
    body += ["`lntune.json` beside the adapter holds the task head and labels (PEFT's config has no place for them); "
             "`lntune import` turns the folder back into an lntune skin."]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n"


def _write(peft_model, out: Path, extra: dict[str, str]) -> None:
    """save_pretrained into a temporary folder beside OUT, then one rename: no half-written adapter."""
    import shutil
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        # no embedding check: it would fetch the base's config from the Hub, and no lntune adapter resizes them
        peft_model.save_pretrained(tmp, safe_serialization=True, save_embedding_layers=False)
        for name, text in extra.items():
            (tmp / name).write_text(text + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise LntuneError(f"{out} exists; pass --overwrite to replace it, or choose another folder")
    if out.exists() and not out.is_dir():
        raise LntuneError(f"{out} is a file; choose a folder")


def import_peft(adapter: str | Path, out: str | Path, model: str | None = None, overwrite: bool = False) -> Path:
    """Turn a PEFT LN_TUNING or LoRA adapter folder into a skin at OUT with the same outputs.

    >>> from lntune.interop import import_peft
    >>> import_peft("runs/sst2-ln-peft", "runs/sst2-ln-again", model="minilm")  # doctest: +SKIP
    """
    PeftModel, = _peft("PeftModel")

    adapter, out = Path(adapter), Path(out)
    check_out(out, overwrite)
    cfg = _adapter_config(adapter)
    kind = cfg.get("peft_type")
    if kind not in ("LN_TUNING", "LORA"):
        raise LntuneError(f"{adapter}: peft_type {kind!r}; lntune imports LN_TUNING and LORA adapters")
    base = model or _noted_alias(adapter) or _local(cfg.get("base_model_name_or_path"))
    if not base:
        raise LntuneError(f"{adapter}: adapter_config.json names no base model; pass --model")
    head, labels = _task(adapter, cfg)
    with _quiet():
        peft_model = PeftModel.from_pretrained(_fresh(base, head, labels).model, adapter)
    values, method = _values(peft_model.base_model.model, kind, adapter, cfg)
    lm = _fresh(base, head, labels)  # a clean base for lntune's own modules
    tuning = prepare(lm, method, only=list(values))
    if {t.name for t in tuning.all} != set(values):
        odd = sorted({t.name for t in tuning.all} ^ set(values))
        raise LntuneError(f"{adapter}: its tensors do not map onto {base} as an lntune {method.name} skin "
                          f"(e.g. {odd[:3]}); pass --model with the adapter's base model")
    tuning.load_state(values, str(adapter))
    record = {"task": {"name": f"peft:{adapter.name}", "head": head, "labels": labels},
              "imported": {"from": str(adapter.resolve()), "peft_type": kind}}
    return save_skin(out, tuning, record)


def _values(inner, kind: str, adapter: Path, cfg: dict):
    """{lntune tensor name: value} of the loaded adapter, and the lntune method that holds them."""
    values: dict[str, torch.Tensor] = {}

    def take(prefix: str, module) -> None:
        values.update({f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()})

    for name, m in inner.named_modules():
        if ADAPTER in getattr(m, "modules_to_save", {}):
            take(name, m.modules_to_save[ADAPTER])
    if kind == "LN_TUNING":
        for name, m in inner.named_modules():
            if ADAPTER in getattr(m, "ln_tuning_layers", {}):
                take(name, m.ln_tuning_layers[ADAPTER])
        return values, build_method(_by_peft_type(kind))
    if cfg.get("lora_dropout") or cfg.get("bias", "none") != "none" or cfg.get("use_dora") or cfg.get("use_rslora"):
        raise LntuneError(f"{adapter}: LoRA with dropout, biases, DoRA or rsLoRA has no lntune skin format; "
                          "plain LoRA only")
    layers = [(n, m) for n, m in inner.named_modules() if ADAPTER in getattr(m, "lora_A", {})]
    ranks = {m.r[ADAPTER] for _, m in layers}
    scales = {m.scaling[ADAPTER] for _, m in layers}
    if len(ranks) != 1 or len(scales) != 1:
        raise LntuneError(f"{adapter}: per-module ranks or alphas have no lntune skin format (one r and one alpha)")
    r, scale = ranks.pop(), scales.pop()
    for name, m in layers:
        values[f"{name}.lora.A"] = m.lora_A[ADAPTER].weight.detach().clone()
        values[f"{name}.lora.B"] = m.lora_B[ADAPTER].weight.detach().clone()
    targets = ",".join(sorted({n.rpartition(".")[2] for n, _ in layers}))
    return values, build_method(_by_peft_type(kind), r=r, alpha=scale * r, targets=targets)  # LoRA's options


def _noted_alias(adapter: Path) -> str | None:
    """The embedded alias lntune's note names as the base (its weights, where they are not the Hub's)."""
    note = adapter / NOTE
    base = json.loads(note.read_text(encoding="utf-8")).get("base") if note.exists() else None
    return base if base in ORIGIN else None


def _local(base: str | None) -> str | None:
    """An embedded model's Hub id -> its alias, so an exported MiniLM adapter imports offline."""
    return next((alias for alias, (hub, same) in ORIGIN.items() if same and hub == base), base)


def _adapter_config(adapter: Path) -> dict:
    path = adapter / "adapter_config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise LntuneError(f"{adapter}: no adapter_config.json; not a PEFT adapter folder") from None
    except json.JSONDecodeError as e:
        raise LntuneError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(cfg, dict):
        raise LntuneError(f"{path}: expected a JSON object")
    return cfg


def _task(adapter: Path, cfg: dict) -> tuple[str, list[str]]:
    """(head, labels): from lntune's note when lntune exported it, else from the task type and head tensors."""
    note = adapter / NOTE
    if note.exists():
        n = json.loads(note.read_text(encoding="utf-8"))
        return n["head"], list(n.get("labels") or [])
    if peft_head(cfg.get("task_type")).generates:
        return peft_head(cfg.get("task_type")).name, []
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        saved = cfg.get("modules_to_save") or []
        shapes = [f.get_slice(k).get_shape() for k in f.keys()
                  if k.endswith(".weight") and k.rsplit(".", 2)[-2] in saved]
    if not shapes:
        raise LntuneError(f"{adapter}: no task head among its tensors (modules_to_save); lntune skins carry their head")
    head = peft_head(cfg.get("task_type"), outputs=shapes[0][0])
    return head.name, head.labels_shown([f"LABEL_{i}" for i in range(shapes[0][0])])
