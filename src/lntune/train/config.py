from __future__ import annotations

from dataclasses import dataclass, fields

from lntune.train.validate import check_config


@dataclass(frozen=True)
class TrainConfig:
    """Every training option of a run, checked when built (lntune.train.validate): the same rules for
    `lntune train`, the Python API and sweep YAMLs.

    >>> from lntune import TrainConfig
    >>> TrainConfig(lr=1e-3, batch_size=8, grad_accum=4).batch_size * 4
    32
    >>> TrainConfig(lr=-1)
    Traceback (most recent call last):
    lntune.errors.TrainingError: --lr -1: must be a finite number > 0

    Frozen, so no value skips the rules after it is built: `dataclasses.replace(config, lr=...)` checks again.
    """

    lr: float = 1e-2  # LN-tuning needs larger rates than other methods (paper 000, note 6)
    head_lr: float | None = None  # the task head's own lr (one value for every method in a fair comparison); None: lr
    epochs: int = 2  # passes over the training set
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    batch_size: int = 32  # examples per forward pass; the optimizer's batch is batch_size * grad_accum
    grad_accum: int = 1  # forward/backward passes summed into each optimizer step
    eval_batch_size: int = 64
    max_length: int = 128  # tokens per example after truncation
    warmup_ratio: float = 0.06  # linear warm-up share of all steps, then linear decay to 0
    weight_decay: float = 0.0  # head matrices only; never norms, biases or masked tensors
    max_grad_norm: float = 1.0  # gradient clipping
    eval_every: int | None = None  # evaluate every N steps; None: after each epoch
    patience: int | None = None  # stop after N evaluations in a row that are not better (see select, min_delta)
    seed: int = 42
    mixed_precision: str = "no"  # no | bf16 | fp16 autocast (accelerate); tuned tensors stay float32
    progress: bool = True  # progress bar on stderr
    report_to: str = "none"  # none | tensorboard | wandb | mlflow: accelerate's experiment trackers
    packed: bool = True  # one fused AdamW over a flat buffer of the tuned elements; False: per-tensor AdamW
    fast_dropout: bool = True  # CPU: dropout masks from torch.rand, ~2x faster than bernoulli_; same distribution
    cut_last_block: bool = True  # a head reading position 0: the last block computes that row only after attention
    # The frozen modules that run before the lowest trainable one: "train" keeps their dropout, as
    # plain fine-tuning does; "eval" turns it off, so their output depends on the example only and
    # can be computed once (the cache below needs it).
    frozen_bottom: str = "train"  # train | eval
    cache_bottom: str = "auto"  # auto | on | off: reuse the frozen bottom's output every epoch (auto: with eval, when it saves work)
    cache_max_bytes: int = 1 << 30  # caches beyond this go to a memory-mapped file, deleted after training
    cache_dir: str | None = None  # where that file goes (default: the system temp dir)
    # What "better" means on validation, for the kept state and for patience alike: the lowest loss, or the
    # best task score (accuracy, Pearson r, ...: the task's main metric, in its own direction).
    select: str = "loss"  # loss | score
    min_delta: float = 0.0  # an evaluation is better only when it beats the best by more than this (metric units)

    @classmethod
    def from_file(cls, path, **overrides) -> "TrainConfig":
        """The options of a YAML file (as `lntune train --config FILE` reads it), then `overrides`.

            TrainConfig.from_file("run.yaml", seed=1)"""
        from lntune.train.config_file import read_train_file  # the reader sweep configs use too: one schema

        return cls(**{**read_train_file(path, fields(cls)), **overrides})

    def __post_init__(self) -> None:
        # One schema (lntune.train.validate) for the CLI, the Python API and sweep YAMLs.
        check_config(self)
