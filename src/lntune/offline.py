"""Whether the Hugging Face Hub can be reached now, asked before anything that would otherwise retry for half a
minute (datasets, transformers and huggingface_hub all do) only to fail: a missing data folder, model or skin
offline is then one quick, quiet message (issue 25 #6)."""
from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


def hub_offline() -> str | None:
    """Why the Hub cannot be reached now, or None when it may be: HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or
    no address for it (a DNS failure answers in milliseconds, where datasets retries for 25-50 s). Behind a
    proxy a direct probe proves nothing, so it is not made."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set; unset it to download"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    return _no_address(host)


@functools.lru_cache(maxsize=8)
def _no_address(host: str) -> str | None:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return f"no network: {host} has no address here"
    return None
