"""Mixed-task serving: one base model, many LN skins, rows of different skins in one forward pass.

Python: SkinBank (bank.py): predict() for classification, regression, token-classification and
multiple-choice skins; generate() with Sampling (generate.py) for causal-LM skins; skins.py reads and
checks skin files, tables.py holds their values, mixed.py and heads.py apply them per row. HTTP: create_app(bank)
(server.py, FastAPI; /v1 OpenAI-compatible routes in openai.py). CLI: lntune serve (cli.py).
"""
from __future__ import annotations

# Defaults of SkinBank and lntune serve, here so that `lntune --help` reads them without importing torch.
BATCH_SIZE = 64  # inputs per forward pass
# Padded tokens per predict pass. A pass cannot be interrupted, so its length is how long a small request waits
# behind a large one. MiniLM on one CPU thread reads about 2,000 tokens a second at any batch size from 350 tokens
# up (measured: 1 x 350 tokens 0.14 s, 6 x 350 0.97 s, 24 x 350 4.2 s), so 1,024 tokens is a pass of a quarter to
# half a second, at the throughput of larger passes; benchmarks/serve_load.py measures the latencies it gives.
BATCH_TOKENS = 1024


def __getattr__(name: str):
    # Lazy, so `lntune --help` does not import torch, transformers or FastAPI.
    if name in ("SkinBank", "UnknownSkin", "SkinExists", "InputTooLong", "BadInput"):
        from lntune.serve import bank

        return getattr(bank, name)
    if name in ("Sampling", "Generated"):
        from lntune.serve import generate

        return getattr(generate, name)
    if name == "create_app":
        from lntune.serve.server import create_app

        return create_app
    raise AttributeError(name)


__all__ = ["BadInput", "Generated", "InputTooLong", "Sampling", "SkinBank", "SkinExists", "UnknownSkin", "create_app"]
