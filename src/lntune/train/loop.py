"""The training loop: the step (lntune.train.step), linear schedule, evaluation, early stopping,
best-state restore, and the frozen bottom (eval mode and the cache, lntune.train.cache)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lntune.data.encode import collate
from lntune.errors import TrainingError
from lntune.evaluate import evaluate
from lntune.method.tuning import Tuning
from lntune.train.cache import FrozenBottom, setup
from lntune.train.config import TrainConfig
from lntune.train.split import probes
from lntune.train.step import Step, make_accelerator, optimizer  # noqa: F401 - also imported from here


@dataclass
class TrainResult:
    best: dict  # dev metrics of the kept state (lowest validation loss), with its step and epoch
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # training loss of every step
    cache: dict = field(default_factory=dict)  # the frozen-bottom cache: site, batches served and recorded
    epoch_seconds: list[float] = field(default_factory=list)  # training time of each epoch, evaluations excluded
    best_seconds: float = 0.0  # training time (evaluations excluded) until the kept state was reached


def loaders(tuning: Tuning, train_feats, dev_feats, config: TrainConfig, indexed: bool = False):
    """Train (shuffled, seeded) and dev loaders; `indexed` batches carry "_index", the example ids."""
    pad = tuning.lm.tokenizer.pad_token_id
    gen = torch.Generator().manual_seed(config.seed)
    col = partial(_indexed_collate if indexed else collate, pad_id=pad)
    if indexed:
        train_feats, dev_feats = list(enumerate(train_feats)), list(enumerate(dev_feats))
    train = DataLoader(train_feats, config.batch_size, shuffle=True, collate_fn=col, generator=gen)
    dev = DataLoader(dev_feats, config.eval_batch_size, shuffle=False, collate_fn=col)
    return train, dev


def _indexed_collate(items: list[tuple[int, dict]], pad_id: int) -> dict:
    batch = collate([f for _, f in items], pad_id)
    batch["_index"] = torch.tensor([i for i, _ in items])
    return batch


class _Selecting:
    """Iterate a loader, telling the frozen bottom which examples each batch holds."""

    def __init__(self, loader, bottom: FrozenBottom, name: str) -> None:
        self.loader, self.bottom, self.name = loader, bottom, name

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            self.bottom.select(self.name, batch.pop("_index"))
            yield batch
        self.bottom.select(None, None)


def train(
    tuning: Tuning, train_feats: list[dict], dev_feats: list[dict], config: TrainConfig, label_names: tuple[str, ...] = ()
) -> TrainResult:
    """Train `tuning`'s tensors, evaluate on dev, and leave the model in its best-loss state.

    `label_names` (the task's labels) let token-classification report entity scores; with
    epochs=0 the untrained model is evaluated once, a baseline run."""
    from accelerate.utils import set_seed

    set_seed(config.seed)
    acc = make_accelerator(config.mixed_precision)
    pad = tuning.lm.tokenizer.pad_token_id
    batches = probes(train_feats, partial(collate, pad_id=pad), pad) if train_feats else []
    bottom = setup(tuning, {"train": train_feats, "dev": dev_feats}, batches, config)
    try:
        return _train(tuning, config, label_names, acc, bottom, batches, train_feats, dev_feats)
    finally:
        bottom.close()  # also when setting up failed: the disk-backed cache goes


def _train(tuning, config, label_names, acc, bottom, batches, train_feats, dev_feats) -> TrainResult:
    train_dl, dev_dl = loaders(tuning, train_feats, dev_feats, config, indexed=True)
    total = config.max_steps or config.epochs * len(train_dl)
    last = f"{tuning.lm.norms.blocks}.{tuning.lm.norms.num_layers - 1}."
    cut = not (bottom.site or "").startswith(last)  # a cache serving the last block feeds it whole rows
    step = Step(tuning, config, total, train_dl, dev_dl, acc=acc, probes=batches, cut=cut)
    model = step.model
    train_dl, dev_dl = (_Selecting(dl, bottom, name) for dl, name in zip(step.loaders, ("train", "dev")))
    head = tuning.lm.head
    state = _State(best_loss=math.inf)
    bar = tqdm(total=total, desc="train", disable=not (config.progress and acc.is_main_process), unit="step")
    start = time.perf_counter()

    def checkpoint(epoch: int) -> bool:
        began = time.perf_counter()
        trained = began - start - state.eval_seconds
        m = evaluate(model, dev_dl, head, acc, label_names)
        bottom.set_eval(model)  # evaluate() put every module back in training mode
        m.update(step=state.step, epoch=epoch)
        state.history.append(m)
        if not bar.disable:
            bar.write(f"eval step {state.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
        if m["loss"] < state.best_loss:
            state.best_loss, state.best, state.snapshot, state.bad = m["loss"], m, tuning.state(), 0
            state.best_seconds = trained
        else:
            state.bad += 1
        state.eval_seconds += time.perf_counter() - began
        return config.patience is not None and state.bad >= config.patience

    stop = False
    try:
        with bottom.active(model):
            if total == 0:
                checkpoint(0)
            for epoch in range(1, (math.ceil(total / len(train_dl)) if config.max_steps else config.epochs) + 1):
                model.train()
                bottom.set_eval(model)
                began, evaluating = time.perf_counter(), 0.0
                for batch in train_dl:
                    loss = step.forward(batch)
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"loss is {loss.item()} at step {state.step + 1} (lr {config.lr}); "
                            "lower --lr, or train in float32 without --mixed-precision"
                        )
                    step.update(loss)
                    state.step += 1
                    state.losses.append(loss.item())
                    bar.update(1)
                    bar.set_postfix(loss=f"{state.losses[-1]:.4f}", epoch=epoch)
                    if config.eval_every and state.step % config.eval_every == 0:
                        t = time.perf_counter()
                        stop = checkpoint(epoch)
                        evaluating += time.perf_counter() - t
                    if stop or state.step >= total:
                        break
                state.epoch_seconds.append(time.perf_counter() - began - evaluating)
                evaluated = state.history and state.history[-1]["step"] == state.step
                if not stop and not evaluated and (not config.eval_every or state.step >= total):
                    stop = checkpoint(epoch)
                if stop or state.step >= total:
                    break
    finally:
        bar.close()
        step.close()
    tuning.load_state(state.snapshot, "best checkpoint")
    cache = {}
    if bottom.split is not None:
        cache = {"lowest": bottom.split.lowest, "site": bottom.site,
                 "granularity": bottom.split.granularity if bottom.site else None,
                 "served": bottom.served, "recorded": bottom.captured}
    return TrainResult(state.best, state.history, state.step, time.perf_counter() - start, state.losses, cache,
                       state.epoch_seconds, state.best_seconds)


@dataclass
class _State:
    best_loss: float
    best: dict = field(default_factory=dict)
    snapshot: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    step: int = 0
    bad: int = 0
    losses: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    eval_seconds: float = 0.0
    best_seconds: float = 0.0
