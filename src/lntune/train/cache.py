"""The frozen-bottom cache: the input of the split's site, per example, computed once.

Each example's rows (one per sequence; one per choice for multiple choice) are stored unpadded,
[length, d], back to back in one buffer: in memory, or in a memory-mapped file in a temporary
directory once the run's caches pass `cache_max_bytes`. A batch is served from the cache when
every example in it has been seen; the rows are padded with zeros to the batch's width exactly as
the collate pads the tokens. Nothing is computed ahead: the first epoch (and the first evaluation)
runs the model as usual and records the site's input on the way, so the bottom is computed once
per example in all."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lntune.errors import TrainingError
from lntune.spec.train import TrainConfig
from lntune.train.split import Split, find_split, serving, set_bottom_eval

_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.int16}  # bf16 kept as raw bits


def _rows(feature: dict) -> list[int]:
    ids = feature["input_ids"]
    return [len(r) for r in ids] if ids and isinstance(ids[0], list) else [len(ids)]


class Store:
    """Rows of per-example states in one flat [tokens, d] buffer, in memory or on disk."""

    def __init__(self, features: list[dict], dim: int, dtype: torch.dtype, on_disk: Path | None = None) -> None:
        rows = [_rows(f) for f in features]
        self.first_row = np.cumsum([0] + [len(r) for r in rows])  # example -> its first row
        lengths = [n for r in rows for n in r]
        self.length = torch.tensor(lengths, dtype=torch.long)
        self.start = np.cumsum([0] + lengths)  # row -> its first token
        self.dtype, self.dim = dtype, dim
        self.filled = torch.zeros(len(features), dtype=torch.bool)
        shape = (int(self.start[-1]), dim)
        self.path = on_disk
        if on_disk is None:
            self.data = torch.empty(shape, dtype=dtype)
        else:
            mm = np.lib.format.open_memmap(on_disk, mode="w+", dtype=_NUMPY[dtype], shape=shape)
            self.data = torch.from_numpy(mm)  # shares the mapping: writes land in the file

    @staticmethod
    def nbytes(features: list[dict], dim: int, dtype: torch.dtype) -> int:
        return sum(sum(_rows(f)) for f in features) * dim * torch.empty((), dtype=dtype).element_size()

    def _row_ids(self, index: torch.Tensor) -> list[int]:
        return [r for i in index.tolist() for r in range(self.first_row[i], self.first_row[i + 1])]

    def has(self, index: torch.Tensor) -> bool:
        return bool(self.filled[index].all())

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(torch.int16) if self.path is not None and x.dtype == torch.bfloat16 else x

    def put(self, index: torch.Tensor, states: torch.Tensor) -> None:
        states = states.detach().to("cpu", self.dtype)
        for row, r in enumerate(self._row_ids(index)):
            n = int(self.length[r])
            self.data[self.start[r] : self.start[r] + n] = self._raw(states[row, :n])
        self.filled[index] = True

    def get(self, index: torch.Tensor, width: int) -> torch.Tensor:
        ids = self._row_ids(index)
        out = torch.zeros((len(ids), width, self.dim), dtype=self.dtype)
        for row, r in enumerate(ids):
            n = int(self.length[r])
            chunk = self.data[self.start[r] : self.start[r] + n]
            out[row, :n] = chunk.view(torch.bfloat16) if chunk.dtype != self.dtype else chunk
        return out

    def close(self) -> None:
        self.data = None


class _Recorded(Exception):
    """Stops a replayed forward once the site's input is recorded."""


@dataclass
class FrozenBottom:
    """One run's frozen bottom: eval mode for the modules below the lowest trainable one, and the
    cache of the site's input when it is on. Use as a context manager around training."""

    split: Split | None
    site: str | None = None  # where the cache plugs in, when it is on
    stores: dict[str, Store] = field(default_factory=dict)
    tmp: Path | None = None
    selected: tuple[str, torch.Tensor] | None = None
    served: int = 0  # batches served from the cache
    captured: int = 0  # batches recorded into it
    log: list[tuple[str, list[int]]] = field(default_factory=list)  # what each recording held, in order (resume)
    _replaying: bool = False

    @property
    def caching(self) -> bool:
        return bool(self.stores)

    def set_eval(self, model) -> None:
        if self.split is not None:
            set_bottom_eval(model, self.split)

    def select(self, name: str | None, index: torch.Tensor | None) -> None:
        """The examples of the batch about to run, and which store they belong to."""
        self.selected = None if name is None or name not in self.stores else (name, index.cpu())

    def _states(self, rows: int, width: int) -> torch.Tensor | None:
        if self.selected is None:
            return None
        name, index = self.selected
        store = self.stores[name]
        if not store.has(index):
            return None
        self.served += 1
        return store.get(index, width)

    def _capture(self, states: torch.Tensor) -> None:
        if self.selected is not None:
            name, index = self.selected
            self.stores[name].put(index, states)
            self.captured += 1
            self.log.append((name, index.tolist()))
            if self._replaying:
                raise _Recorded  # nothing above the site is needed

    @torch.no_grad()
    def replay(self, model, log: list, features: dict[str, list[dict]], collate, device) -> None:
        """Refill the cache of a resumed run as the run before it filled it: the same batches (the same
        examples, so the same padded width) recorded in the same order, so the cached rows, and every
        batch served from them, come out bit for bit as before. `model` is inside `active()`."""
        if not self.caching:
            return
        was_training = model.training
        model.eval()
        self._replaying = True
        try:
            for name, index in log:
                batch = {k: v.to(device) for k, v in collate([features[name][i] for i in index]).items()}
                self.select(name, torch.tensor(index))
                try:
                    model(**batch)
                except _Recorded:
                    pass
        finally:
            self._replaying = False
            self.select(None, None)
            model.train(was_training)

    @contextlib.contextmanager
    def active(self, model):
        if not self.caching:
            yield self
            return
        try:
            with serving(model, self.split, self._states, self._capture):
                yield self
        finally:
            self.close()

    def close(self) -> None:
        for s in self.stores.values():
            s.close()
        self.stores.clear()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


def setup(tuning, splits: dict[str, list[dict]], batches: list[dict], config: TrainConfig) -> FrozenBottom:
    """Decide eval mode and the cache for this run; `splits` names the feature lists to cache and
    `batches` are the probes (split.probes) that locate the split."""
    if config.frozen_bottom != "eval" or not batches:
        return FrozenBottom(None)
    split = find_split(tuning.lm.model, tuning.lm.norms.blocks, batches)
    bottom = FrozenBottom(split)
    if config.cache_bottom == "off":
        return bottom
    if not split.worthwhile:
        if config.cache_bottom == "on":
            why = split.reason or f"no transformer block runs entirely below {split.lowest}"
            raise TrainingError(f"--cache-bottom on: no frozen bottom to cache ({why}); use --cache-bottom auto or off")
        return bottom
    budget = config.cache_max_bytes
    for name, feats in splits.items():
        size = Store.nbytes(feats, split.state_dim, split.state_dtype)
        path = None
        if size > budget:
            if bottom.tmp is None:
                bottom.tmp = Path(tempfile.mkdtemp(prefix="lntune-bottom-", dir=config.cache_dir))
            path = bottom.tmp / f"{name}.npy"
        else:
            budget -= size
        bottom.stores[name] = Store(feats, split.state_dim, split.state_dtype, path)
    bottom.site = split.site
    return bottom
