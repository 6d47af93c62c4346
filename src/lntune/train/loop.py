"""The training loop: AdamW, linear schedule, evaluation, early stopping, best-state restore."""
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
from lntune.train.config import TrainConfig


@dataclass
class TrainResult:
    best: dict  # dev metrics of the kept state (lowest validation loss), with its step and epoch
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def loaders(tuning: Tuning, train_feats, dev_feats, config: TrainConfig):
    pad = tuning.lm.tokenizer.pad_token_id
    gen = torch.Generator().manual_seed(config.seed)
    col = partial(collate, pad_id=pad)
    train = DataLoader(train_feats, config.batch_size, shuffle=True, collate_fn=col, generator=gen)
    dev = DataLoader(dev_feats, config.eval_batch_size, shuffle=False, collate_fn=col)
    return train, dev


def optimizer(tuning: Tuning, config: TrainConfig) -> torch.optim.AdamW:
    # Decay on a masked tensor would move its masked-out elements, so only head matrices decay.
    params = tuning.parameters()
    decay = {id(t.param) for t in tuning.head if t.param.dim() >= 2} if config.weight_decay else set()
    groups = [{"params": [p for p in params if id(p) not in decay], "weight_decay": 0.0}]
    if decay:
        groups.append({"params": [p for p in params if id(p) in decay], "weight_decay": config.weight_decay})
    return torch.optim.AdamW(groups, lr=config.lr)


def train(
    tuning: Tuning, train_feats: list[dict], dev_feats: list[dict], config: TrainConfig, label_names: tuple[str, ...] = ()
) -> TrainResult:
    """Train `tuning`'s tensors, evaluate on dev, and leave the model in its best-loss state.

    `label_names` (the task's labels) let token-classification report entity scores; with
    epochs=0 the untrained model is evaluated once, a baseline run."""
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    set_seed(config.seed)
    acc = make_accelerator(config.mixed_precision)
    train_dl, dev_dl = loaders(tuning, train_feats, dev_feats, config)
    total = config.max_steps or config.epochs * len(train_dl)
    opt = optimizer(tuning, config)
    sched = get_linear_schedule_with_warmup(opt, int(config.warmup_ratio * total), total)
    model, opt, train_dl, dev_dl, sched = acc.prepare(tuning.lm.model, opt, train_dl, dev_dl, sched)
    head = tuning.lm.head
    state = _State(best_loss=math.inf)
    bar = tqdm(total=total, desc="train", disable=not (config.progress and acc.is_main_process), unit="step")
    start = time.perf_counter()

    def checkpoint(epoch: int) -> bool:
        m = evaluate(model, dev_dl, head, acc, label_names)
        m.update(step=state.step, epoch=epoch)
        state.history.append(m)
        if not bar.disable:
            bar.write(f"eval step {state.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))
        if m["loss"] < state.best_loss:
            state.best_loss, state.best, state.snapshot, state.bad = m["loss"], m, tuning.state(), 0
        else:
            state.bad += 1
        return config.patience is not None and state.bad >= config.patience

    stop = False
    if total == 0:
        checkpoint(0)
    for epoch in range(1, (math.ceil(total / len(train_dl)) if config.max_steps else config.epochs) + 1):
        model.train()
        for batch in train_dl:
            loss = model(**batch).loss
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"loss is {loss.item()} at step {state.step + 1} (lr {config.lr}); "
                    "lower --lr, or train in float32 without --mixed-precision"
                )
            acc.backward(loss)
            acc.clip_grad_norm_(tuning.parameters(), config.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            state.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", epoch=epoch)
            if config.eval_every and state.step % config.eval_every == 0:
                stop = checkpoint(epoch)
            if stop or state.step >= total:
                break
        evaluated = state.history and state.history[-1]["step"] == state.step
        if not stop and not evaluated and (not config.eval_every or state.step >= total):
            stop = checkpoint(epoch)
        if stop or state.step >= total:
            break
    bar.close()
    tuning.load_state(state.snapshot, "best checkpoint")
    return TrainResult(state.best, state.history, state.step, time.perf_counter() - start)


def make_accelerator(mixed_precision: str):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # accelerate keeps one process-wide state; a run with another precision must reset it.
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=mixed_precision)


@dataclass
class _State:
    best_loss: float
    best: dict = field(default_factory=dict)
    snapshot: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    step: int = 0
    bad: int = 0
