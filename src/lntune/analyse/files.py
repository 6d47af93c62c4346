"""Write result files whole or not at all: a temp name in the same folder, then os.replace."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, obj) -> Path:
    return write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def write_csv(path: str | Path, rows: list[dict]) -> Path:
    """Rows share the keys of the first; None becomes an empty cell."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return write_bytes(path, buf.getvalue().encode())


def save_figure(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def save_tensors(path: str | Path, tensors: dict, metadata: dict | None = None) -> Path:
    """safetensors with JSON-encoded metadata values (safetensors metadata is str -> str)."""
    from safetensors.torch import save

    meta = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    return write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta))


def load_tensors(path: str | Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = {k: _decode(v) for k, v in (f.metadata() or {}).items()}
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def _decode(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:  # written by another tool
        return value
