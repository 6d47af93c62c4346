"""A content hash of base weights, so a skin is never applied to the wrong model."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

import torch


def fingerprint(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over names, shapes, dtypes and bytes, in name order."""
    h = hashlib.sha256()
    for name, t in sorted(named, key=lambda kv: kv[0]):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return "sha256:" + h.hexdigest()
