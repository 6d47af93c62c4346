"""One training step on the lntune path: forward, backward, clipping, the optimizer and the schedule.

The backward pass reaches down to the lowest trainable tensor and no further (nothing below needs a
gradient), computes input gradients only through frozen matrices, and the optimizer touches the
tuned elements only (PackedAdamW). `train()` runs this step; benchmarks time this same object."""
from __future__ import annotations

import os
from contextlib import nullcontext

import torch

from lntune.errors import TrainingError
from lntune.heads import get_head
from lntune.method.tuning import Tuning
from lntune.spec.train import TrainConfig
from lntune.train.fast import FastDropout
from lntune.train.log import trackers
from lntune.train.packed import PackedAdamW, group_of
from lntune.train.rows import cutting, find_cut


def multi_cpu_launch() -> bool:
    """Whether this process is one of several (torchrun, accelerate launch, MPI) on a machine whose device
    cannot join a process group (no CUDA/XPU/...): then the processes must train together on CPU over gloo.

    accelerate picks that only when asked with cpu=True; without it, every process reports
    DistributedType.NO and trains a replica of its own."""
    keys = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
    if int(os.environ.get("LOCAL_RANK", -1)) == -1 and all(int(os.environ.get(k) or 1) <= 1 for k in keys):
        return False
    try:
        from accelerate.utils.imports import get_distributed_backend, get_torch_accelerator_backend

        device, _ = get_torch_accelerator_backend()
        return device is None or get_distributed_backend(device) is None
    except ImportError:  # an accelerate without these helpers
        return not torch.cuda.is_available()


def process_state():
    """accelerate's PartialState, created as make_accelerator creates it (the first creation decides)."""
    from accelerate import PartialState

    return PartialState(cpu=multi_cpu_launch())


def is_main_process() -> bool:
    """True in a single process, and in the first of a multi-process launch: the one that writes and prints."""
    return process_state().is_main_process


def make_accelerator(mixed_precision: str, report_to: str = "none", log_dir=None):
    """The run's Accelerator (with `report_to`'s tracker writing under `log_dir`). `--batch-size` is the global batch: with N processes each gets 1/N of every
    batch (split_batches), so a run means the same thing, and steps the schedule the same, on any N (a
    last, partial batch is completed with examples from the epoch's start, as accelerate does; evaluation
    drops those repeats again)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DataLoaderConfiguration

    # accelerate keeps one process-wide state; a run with another precision must reset it.
    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=True)
    tracking = {"log_with": trackers(report_to), "project_dir": log_dir} if trackers(report_to) else {}
    return Accelerator(mixed_precision=mixed_precision, cpu=multi_cpu_launch(),
                       dataloader_config=DataLoaderConfiguration(split_batches=True), **tracking)


def check_batches(config: TrainConfig, processes: int) -> None:
    """With several processes each batch is split evenly between them."""
    if processes < 2:
        return
    for flag, size in (("--batch-size", config.batch_size), ("--eval-batch-size", config.eval_batch_size)):
        if size % processes:
            raise TrainingError(
                f"{flag} {size}: with {processes} processes the batch (the global batch, split between them) "
                f"must be a multiple of {processes}"
            )


def optimizer(tuning: Tuning, config: TrainConfig) -> torch.optim.AdamW:
    """Per-tensor torch AdamW over the tuned tensors: the reference PackedAdamW is tested against."""
    groups: dict[tuple[float, float], list] = {}
    for t in tuning.all:
        if all(t.param is not p for ps in groups.values() for p in ps):
            groups.setdefault(group_of(tuning, t, config.lr, config.weight_decay, config.head_lr), []).append(t.param)
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
                             lr=config.lr)


def micro_batches(batch: dict, parts: int, head: str) -> list[tuple[dict, float]]:
    """BATCH cut into PARTS micro-batches (fewer when it has fewer rows), each with its share of the
    batch's loss terms: the weighted sum of their mean losses is the batch's mean loss."""
    rows = batch["labels"].shape[0]
    bounds = [round(i * rows / parts) for i in range(parts + 1)]
    chunks = [{k: v[a:b] for k, v in batch.items()} for a, b in zip(bounds, bounds[1:]) if b > a]
    terms = [get_head(head).loss_terms(c["labels"]) for c in chunks]
    total = sum(terms)
    if not total:  # no labelled token at all: the loss is NaN either way, and the loop says so
        return [(c, 1 / len(chunks)) for c in chunks]
    return [(c, n / total) for c, n in zip(chunks, terms) if n]  # a part without terms has a NaN mean loss


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
        wanted = cut and config.cut_last_block and get_head(lm.head).one_output_per_row and probes
        self.cut = find_cut(lm.model, lm.norms.blocks, list(probes)) if wanted else None
        self.acc = acc or make_accelerator(config.mixed_precision)
        self.packed = PackedAdamW(tuning, config.lr, config.weight_decay, head_lr=config.head_lr) if config.packed else None
        opt = self.packed or optimizer(tuning, config)
        sched = get_linear_schedule_with_warmup(opt, int(config.warmup_ratio * total_steps), total_steps)
        self.model, self.opt, self.sched, *self.loaders = self.acc.prepare(tuning.lm.model, opt, sched, *loaders)
        if self.packed is not None:
            self.packed.bind()  # DDP (several processes) gave the tensors their own storage again

    def forward(self, batch: dict) -> torch.Tensor:
        with cutting(self.model, self.cut), FastDropout() if self.config.fast_dropout else nullcontext():
            return self.model(**batch).loss

    def accumulate(self, chunks) -> torch.Tensor:
        """Forward and backward over the micro-batches of one optimizer step (see micro_batches), each
        loss weighted by its share of the step's loss terms, so the summed gradient is the one of the
        whole batch; returns that batch's loss, detached. DDP syncs gradients on the last one only."""
        total = None
        for i, (chunk, weight) in enumerate(chunks):
            last = i == len(chunks) - 1
            with nullcontext() if last else self.acc.no_sync(self.model):
                loss = self.forward(chunk) * weight
                self.acc.backward(loss)
            total = loss.detach() if total is None else total + loss.detach()
        return total

    def apply(self) -> None:
        """Clip the accumulated gradients, step the optimizer and the schedule, zero the gradients."""
        if self.packed is not None:
            self.packed.gather_masked()
            self.acc.unscale_gradients()  # fp16: the loss scale comes off before clipping
            self.packed.clip_flat_(self.config.max_grad_norm)
        else:
            self.acc.clip_grad_norm_(self.tuning.parameters(), self.config.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)

    def update(self, loss: torch.Tensor) -> None:
        self.acc.backward(loss)
        self.apply()

    def __call__(self, batch: dict) -> torch.Tensor:
        loss = self.forward(batch)
        self.update(loss)
        return loss.detach()

    def close(self) -> None:
        """Give the tuned tensors their own storage back and drop their gradients."""
        if self.packed is not None:
            self.packed.release()
