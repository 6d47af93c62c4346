"""One training step on the lntune path: forward, backward, clipping, the optimizer and the schedule.

The backward pass reaches down to the lowest trainable tensor and no further (nothing below needs a
gradient), computes input gradients only through frozen matrices, and the optimizer touches the
tuned elements only (PackedAdamW). `train()` runs this step; benchmarks time this same object."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from lntune.method.tuning import Tuning
from lntune.train.config import TrainConfig
from lntune.train.fast import FastDropout
from lntune.train.packed import PackedAdamW, group_of
from lntune.train.rows import cutting, find_cut


def make_accelerator(mixed_precision: str):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # accelerate keeps one process-wide state; a run with another precision must reset it.
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=mixed_precision)


def optimizer(tuning: Tuning, config: TrainConfig) -> torch.optim.AdamW:
    """Per-tensor torch AdamW over the tuned tensors: the reference PackedAdamW is tested against."""
    groups: dict[tuple[float, float], list] = {}
    for t in tuning.all:
        if all(t.param is not p for ps in groups.values() for p in ps):
            groups.setdefault(group_of(tuning, t, config.lr, config.weight_decay, config.head_lr), []).append(t.param)
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
                             lr=config.lr)


class Step:
    """Call with a batch: one optimizer step; returns the loss, detached."""

    def __init__(
        self, tuning: Tuning, config: TrainConfig, total_steps: int, *loaders, acc=None, probes: list[dict] = (),
        cut: bool = True,
    ) -> None:
        """`probes` (split.probes) let the step find where the last block can be cut (config.cut_last_block);
        `cut=False` rules the cut out (e.g. when a cache serves the last block)."""
        from transformers import get_linear_schedule_with_warmup

        self.tuning, self.config = tuning, config
        lm = tuning.lm
        sequence_head = lm.head in ("classification", "regression", "multiple-choice")  # token heads read every row
        wanted = cut and config.cut_last_block and sequence_head and probes
        self.cut = find_cut(lm.model, lm.norms.blocks, list(probes)) if wanted else None
        self.acc = acc or make_accelerator(config.mixed_precision)
        self.packed = PackedAdamW(tuning, config.lr, config.weight_decay, head_lr=config.head_lr) if config.packed else None
        opt = self.packed or optimizer(tuning, config)
        sched = get_linear_schedule_with_warmup(opt, int(config.warmup_ratio * total_steps), total_steps)
        self.model, self.opt, self.sched, *self.loaders = self.acc.prepare(tuning.lm.model, opt, sched, *loaders)

    def forward(self, batch: dict) -> torch.Tensor:
        with cutting(self.model, self.cut), FastDropout() if self.config.fast_dropout else nullcontext():
            return self.model(**batch).loss

    def update(self, loss: torch.Tensor) -> None:
        self.acc.backward(loss)
        if self.packed is not None:
            self.packed.gather_masked()
            self.acc.unscale_gradients()  # fp16: the loss scale comes off before clipping
            self.packed.clip_flat_(self.config.max_grad_norm)
        else:
            self.acc.clip_grad_norm_(self.tuning.parameters(), self.config.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)

    def __call__(self, batch: dict) -> torch.Tensor:
        loss = self.forward(batch)
        self.update(loss)
        return loss.detach()

    def close(self) -> None:
        """Give the tuned tensors their own storage back and drop their gradients."""
        if self.packed is not None:
            self.packed.release()
