"""Mixed-task serving: one base model, many LN skins, rows of different tasks in one forward pass.

Python: SkinBank (bank.py). HTTP: create_app(bank) (server.py, FastAPI). CLI: lntune serve (cli.py).
"""
from __future__ import annotations


def __getattr__(name: str):
    # Lazy, so `lntune --help` does not import torch, transformers or FastAPI.
    if name in ("SkinBank", "UnknownSkin", "SkinExists", "InputTooLong", "BadInput"):
        from lntune.serve import bank

        return getattr(bank, name)
    if name == "create_app":
        from lntune.serve.server import create_app

        return create_app
    raise AttributeError(name)


__all__ = ["BadInput", "InputTooLong", "SkinBank", "SkinExists", "UnknownSkin", "create_app"]
