"""Load a pretrained model with a task head: hub ids, local paths and the embedded aliases."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lntune import offline as _offline
from lntune.errors import LntuneError
from lntune.heads import get_head
from lntune.model.archmap import NormMap, map_norms
from lntune.model.embedded import package_dir, source_of
from lntune.model.fingerprint import fingerprint

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class LoadedModel:
    """A model ready for a method: its tokenizer, head parameters, norm map and base fingerprint."""

    model: nn.Module
    tokenizer: object
    model_id: str  # what the user asked for: alias, hub id or path
    head: str  # a name in heads.HEADS
    head_names: tuple[str, ...]  # parameters created for the task (trained by every method)
    norms: NormMap
    fingerprint: str  # of the base weights, head excluded
    dtype: str = "float32"
    source: dict = field(default_factory=dict)  # where the weights came from (lntune.model.embedded.source_of)

    def base_parameters(self):
        heads = set(self.head_names)
        return [(n, p) for n, p in self.model.named_parameters() if n not in heads]

    @property
    def base_count(self) -> int:
        return sum(p.numel() for _, p in self.base_parameters())

    @property
    def head_count(self) -> int:
        params = dict(self.model.named_parameters())
        return sum(params[n].numel() for n in self.head_names)


def cache_dir() -> Path:
    return Path(os.environ.get("LNTUNE_CACHE", Path.home() / ".cache" / "lntune"))


def _smollm2_dir() -> Path:
    """Dequantise the embedded GGUF once and keep it as safetensors: later loads take a second."""
    gguf = package_dir("smollm2") / _SMOLLM2_GGUF
    target = cache_dir() / f"smollm2-{gguf.stat().st_size}"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # weights are plain float32 now; transformers refuses to save otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".smollm2-"))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve(model_id: str) -> str:
    """Alias -> local directory; anything else is passed to from_pretrained as it is."""
    if model_id == "minilm":
        return str(package_dir("minilm") / "model")
    if model_id == "smollm2":
        return str(_smollm2_dir())
    return model_id


def _cached(model_id: str) -> bool:
    """Whether the Hugging Face cache holds `model_id`'s config (a download from an earlier, online run)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an id the cache cannot even parse is not cached
        return False


def _from_pretrained(source: str, head: str, num_labels: int, dtype: torch.dtype, seed: int | None = None,
                     name: str | None = None):
    import transformers
    from transformers.utils import logging

    kind = get_head(head)
    kwargs = {"dtype": dtype, "output_loading_info": True, **kind.model_kwargs(num_labels)}
    if not Path(source).exists():  # a Hub id: offline, transformers would retry for most of a minute
        offline = _offline.hub_offline()
        if offline and not _cached(source):
            raise LntuneError(f"could not load model {source!r}: no such local folder, not in the Hugging Face "
                              f"cache, and the Hub cannot be reached ({offline}).\nUse an alias (minilm, smollm2), "
                              "a local directory with config.json and weights, or a Hugging Face id while online.")
        kwargs["local_files_only"] = bool(offline)  # cached: load it without asking the Hub

    # The load report only says the task head is new, which is the point of a task head.
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        # The new head is drawn from torch's global generator, whose start seed is random per process.
        # A seed draws it from a fresh generator state (the caller's state is left as it was), so the
        # same seed gives the same head in every run and under every method: paired comparisons.
        with torch.random.fork_rng(devices=[]) if seed is not None else nullcontext():
            if seed is not None:
                torch.manual_seed(seed)
            return getattr(transformers, kind.auto_class).from_pretrained(source, **kwargs)
    except OSError as e:
        raise LntuneError(
            f"could not load model {source!r}: {e}\nUse an alias (minilm, smollm2), a local directory "
            "with config.json and weights, or a Hugging Face id while online."
        ) from e
    except ValueError as e:
        if "Unrecognized configuration class" not in str(e):
            raise
        found = re.search(r"class '([\w.]+)'", str(e))
        config = found.group(1).rsplit(".", 1)[-1] if found else "its config"
        raise LntuneError(f"model {name or source!r} ({config}) has no {head} head in transformers; "
                          f"{kind.unsupported_hint}") from None


def load_model(
    model_id: str = "minilm",
    head: str = "classification",
    num_labels: int = 2,
    dtype: str = "float32",
    norm_map: dict[str, str] | None = None,
    seed: int | None = None,
) -> LoadedModel:
    """Load `model_id` (alias, hub id or path) with a fresh task head, drawn from `seed` when given.

    >>> from lntune import load_model
    >>> lm = load_model("minilm", "regression", seed=0)
    >>> lm.head, lm.norms.num_layers, len(lm.norms)
    ('regression', 6, 13)
    """
    from transformers import AutoTokenizer

    get_head(head)  # an unknown name fails here, before anything loads
    source = resolve(model_id)
    model, info = _from_pretrained(source, head, num_labels, DTYPES[dtype], seed, model_id)
    tokenizer = AutoTokenizer.from_pretrained(source)
    params = dict(model.named_parameters())
    head_names = tuple(sorted(n for n in info["missing_keys"] if n in params))
    lm = wrap(model, tokenizer, model_id, head, head_names, norm_map, dtype)
    lm.source = source_of(model_id, model.config)
    return lm


def wrap(
    model: nn.Module,
    tokenizer: object,
    model_id: str,
    head: str,
    head_names: tuple[str, ...],
    norm_map: dict[str, str] | None = None,
    dtype: str = "float32",
) -> LoadedModel:
    """Wrap a model built in memory (tests, notebooks) the same way load_model does."""
    if tokenizer is not None and getattr(tokenizer, "pad_token", None) is None:
        tokenizer.pad_token = tokenizer.eos_token  # decoders ship without one
    if tokenizer is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    heads = set(head_names)
    base = [(n, p) for n, p in model.named_parameters() if n not in heads]
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_id=model_id,
        head=head,
        head_names=tuple(head_names),
        norms=map_norms(model, norm_map),
        fingerprint=fingerprint(base),
        dtype=dtype,
    )
