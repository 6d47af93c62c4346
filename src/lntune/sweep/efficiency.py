"""Time one method (paper 000 fig. 2): optimizer steps, no-grad forwards, peak memory.

Run in a process of its own, with nothing else running, so the peak and the timings are the run's.
Every row of the batch is padded to seq_len tokens: all methods do the same arithmetic per step.
The timed step is the training loop's own (lntune.train.step.Step: forward, backward, clipping,
optimizer, schedule), so the numbers are what `lntune train` spends per step.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time

import torch

from lntune.data.encode import collate
from lntune.heads import encode, IGNORE
from lntune.spec.run import RunSpec
from lntune.api import load_split
from lntune.data import get_task
from lntune.method import build_method, prepare
from lntune.model import load_model
from lntune.train import TrainConfig
from lntune.train.step import make_accelerator, Step


def fixed_batch(feats: list[dict], pad_id: int, seq_len: int) -> dict[str, torch.Tensor]:
    """Collate, then pad every sequence field to exactly seq_len tokens."""
    batch = collate(feats, pad_id)
    out = {}
    for k, v in batch.items():
        if v.dim() >= 2 and v.shape[-1] < seq_len:
            fill = {"input_ids": pad_id, "labels": IGNORE}.get(k, 0)
            v = torch.nn.functional.pad(v, (0, seq_len - v.shape[-1]), value=fill)
        out[k] = v
    return out


def _timed(fn, steps: int, warmup: int, device: torch.device) -> list[float]:
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def measure(spec: RunSpec, data_dir=None, machine: dict | None = None) -> dict:
    """Median seconds of a training step and of a no-grad forward of the same batch, and peak memory."""
    e = spec.efficiency
    config = TrainConfig(**{**spec.train, **(machine or {}), "progress": False})
    t = get_task(spec.task)
    torch.manual_seed(config.seed)
    lm = load_model(spec.model, t.head, max(len(t.labels), 1))
    tuning = prepare(lm, build_method(spec.method, **spec.options))
    examples = load_split(t.name, "train", data_dir, e.batch_size, config.seed)
    if len(examples) < e.batch_size:  # a small task: repeat rows to fill the batch
        examples = (examples * e.batch_size)[: e.batch_size]
    feats = encode(examples, lm.tokenizer, t.head, e.seq_len)
    batch = fixed_batch(feats, lm.tokenizer.pad_token_id, e.seq_len)
    acc = make_accelerator(config.mixed_precision)
    step = Step(tuning, config, e.warmup + e.steps, acc=acc, probes=[batch])
    model = step.model
    batch = {k: v.to(acc.device) for k, v in batch.items()}

    @torch.no_grad()
    def infer() -> None:
        model(**batch)

    try:
        model.train()
        train_times = _timed(lambda: step(batch), e.steps, e.warmup, acc.device)
        model.eval()
        infer_times = _timed(infer, e.steps, e.warmup, acc.device)
    finally:
        step.close()
    efficiency = {
        "train_step_seconds": statistics.median(train_times),
        "infer_batch_seconds": statistics.median(infer_times),
        "peak_memory_mb": peak_memory_mb(acc.device),
        "batch_size": e.batch_size,
        "seq_len": e.seq_len,
        "device": acc.device.type,
        "threads": torch.get_num_threads(),
    }
    return {"efficiency": efficiency, "counts": tuning.counts(), "steps": e.steps,
            "train_seconds": sum(train_times)}
