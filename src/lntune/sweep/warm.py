"""Imported by the local fork server before it forks any worker: the modules runs of this sweep's
models import (transformers loads a model's modeling code lazily, seconds on a busy CPU).

The driver names the models in $LNTUNE_SWEEP_MODELS (one per line) before it starts the server."""
import importlib
import json
import os
from pathlib import Path

MODELS_ENV = "LNTUNE_SWEEP_MODELS"


def _warm() -> None:
    from lntune.model.load import resolve  # in the worker, after the fork: the parent loads no model code

    for model in filter(None, os.environ.get(MODELS_ENV, "").split("\n")):
        try:
            kind = json.loads((Path(resolve(model)) / "config.json").read_text())["model_type"].replace("-", "_")
        except Exception:  # a hub id (not downloaded yet) or a broken path: the run itself will say
            continue
        for name in (f"transformers.models.{kind}.modeling_{kind}", f"transformers.models.{kind}.tokenization_{kind}"):
            try:
                importlib.import_module(name)
            except ImportError:
                pass


_warm()
