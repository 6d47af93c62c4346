from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    lr: float = 1e-2  # LN-tuning needs larger rates than other methods (paper 000, note 6)
    epochs: int = 2  # passes over the training set
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    batch_size: int = 32
    eval_batch_size: int = 64
    max_length: int = 128  # tokens per example after truncation
    warmup_ratio: float = 0.06  # linear warm-up share of all steps, then linear decay to 0
    weight_decay: float = 0.0  # head matrices only; never norms, biases or masked tensors
    max_grad_norm: float = 1.0  # gradient clipping
    eval_every: int | None = None  # evaluate every N steps; None: after each epoch
    patience: int | None = None  # stop after N evaluations without a lower validation loss
    seed: int = 42
    mixed_precision: str = "no"  # no | bf16 | fp16 autocast (accelerate); tuned tensors stay float32
    progress: bool = True  # progress bar on stderr
