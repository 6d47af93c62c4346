"""The training options of a run (TrainConfig), each field with its rule, its `lntune train` help and its sweep
role: one definition that the CLI flags, `--config` YAML, sweep YAMLs and the Python API are built from."""
from __future__ import annotations

import math
import os
from dataclasses import Field, dataclass, field, fields

from lntune.errors import TrainingError
from lntune.spec.config_file import read_train_file  # the reader sweep configs use too: one schema
from lntune.spec.rules import Rule

TRACKERS = ("none", "tensorboard", "wandb", "mlflow")  # accelerate's tracker names that lntune train offers

# How a sweep treats a field: part of the run key (key); in the key only when set to something other than its
# default (late: fields added after stores had recorded runs, so older keys survive them); set by the grid
# itself (grid); reaching the worker but never the key, as it says where or how a run stores things (machine);
# refused in a sweep YAML (off, and kept out of the key like machine fields).
SWEEP_ROLES = ("key", "late", "grid", "machine", "off")


def option(default, rule: Rule, help: str, *, flag: bool = True, sweep: str = "key"):
    """A TrainConfig field: its default, its rule (checked whenever a config is built), the help of its
    `lntune train` flag (flag=False: no flag; messages name the field as Python does) and its sweep role."""
    assert sweep in SWEEP_ROLES, sweep
    return field(default=default, metadata={"rule": rule, "help": help, "flag": flag, "sweep": sweep})


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

    # LN-tuning needs larger rates than other methods (paper 000, note 6).
    lr: float = option(1e-2, Rule(float, 0, above=True), "peak learning rate", sweep="grid")
    # One head lr for every method keeps a comparison fair.
    head_lr: float | None = option(None, Rule(float, 0, above=True, unset="the head uses the lr"),
                                   "the task head's own peak learning rate (default: --lr)")
    epochs: int = option(2, Rule(int, 0, note="0 evaluates the untuned model"), "passes over the training set")
    max_steps: int | None = option(None, Rule(int, 1, unset="train for the epochs"), "optimizer steps; overrides --epochs")
    batch_size: int = option(32, Rule(int, 1), "examples per forward pass")
    grad_accum: int = option(1, Rule(int, 1, note="optimizer batch = batch size x grad accum"),
                             "passes summed into each optimizer step (its batch: batch size x N)", sweep="late")
    eval_batch_size: int = option(64, Rule(int, 1), "examples per forward pass when evaluating")
    max_length: int = option(128, Rule(int, 1, note="tokens per example"), "tokens per example after truncation")
    warmup_ratio: float = option(0.06, Rule(float, 0, 1, note="a share of all steps"),
                                 "linear warm-up share of all steps, then linear decay to 0")
    weight_decay: float = option(0.0, Rule(float, 0), "on head matrices only; never norms, biases or masked tensors")
    # clip_grad_norm_ scales by max_norm / norm: a negative max_norm flips the gradient, inf never clips.
    max_grad_norm: float = option(1.0, Rule(float, 0, above=True, finite=False, note="inf: no clipping"),
                                  "gradient clipping")
    eval_every: int | None = option(None, Rule(int, 1, unset="evaluate after each epoch"),
                                    "evaluate every N steps (default: each epoch)")
    patience: int | None = option(None, Rule(int, 1, unset="no early stopping"),
                                  "early stopping: evaluations in a row that are not better")
    seed: int = option(42, Rule(int, 0, 2**32 - 1), "seeds the data order, dropout and the task head",
                       sweep="grid")  # numpy's seed range
    mixed_precision: str = option("no", Rule(str, choices=("no", "bf16", "fp16")),
                                  "no | bf16 | fp16 autocast (accelerate); tuned tensors stay float32")
    progress: bool = option(True, Rule(bool), "progress bar and evaluation lines", sweep="grid")
    # A sweep's runs train in temporary folders, and its records are its log: no tracker there.
    report_to: str = option("none", Rule(str, choices=TRACKERS, several=True),
                            "none | tensorboard | wandb | mlflow, or several joined by commas (tensorboard,wandb): "
                            "log steps and evaluations there too (OUT/metrics.jsonl always)", sweep="off")
    packed: bool = option(True, Rule(bool), "one fused AdamW over a flat buffer of the tuned elements; False: "
                          "per-tensor AdamW", flag=False)
    fast_dropout: bool = option(True, Rule(bool), "CPU: dropout masks from torch.rand, ~2x faster than bernoulli_; "
                                "same distribution", flag=False)
    cut_last_block: bool = option(True, Rule(bool), "a head reading position 0: the last block computes that row "
                                  "only after attention", flag=False)
    # "train" keeps the dropout of the frozen modules below the lowest trainable one, as plain fine-tuning does;
    # "eval" turns it off, so their output depends on the example only and can be computed once (the cache).
    frozen_bottom: str = option("train", Rule(str, choices=("train", "eval")),
                                "train | eval: dropout in the frozen layers below the lowest trained one "
                                "(eval: off, cacheable)")
    cache_bottom: str = option("auto", Rule(str, choices=("auto", "on", "off")),
                               "auto | on | off: compute the frozen bottom once per example (needs --frozen-bottom "
                               "eval; auto: when it saves work)")
    cache_max_bytes: int = option(1 << 30, Rule(int, 0), "caches beyond this go to a memory-mapped file, deleted "
                                  "after training", flag=False, sweep="machine")
    cache_dir: str | None = option(None, Rule(str, unset="the system temp dir"), "where that file goes",
                                   flag=False, sweep="machine")
    # What "better" means on validation, for the kept state and for patience alike.
    select: str = option("loss", Rule(str, choices=("loss", "score")),
                         "loss | score: keep (and be patient for) the lowest dev loss or the best dev score "
                         "(the task's metric, in its own direction)", sweep="late")
    min_delta: float = option(0.0, Rule(float, 0, note="in the selected quantity's units, e.g. 0.001 = 0.1 accuracy "
                                                      "points"),
                              "an evaluation is better only by more than this (metric units)", sweep="late")

    @classmethod
    def from_file(cls, path, **overrides) -> "TrainConfig":
        """The options of a YAML file (as `lntune train --config FILE` reads it), then `overrides`.

            TrainConfig.from_file("run.yaml", seed=1)"""
        return cls(**{**read_train_file(path, fields(cls)), **overrides})

    def __post_init__(self) -> None:
        # One schema (lntune.train.validate) for the CLI, the Python API and sweep YAMLs.
        check_config(self)


def flag_of(f: Field) -> str:
    """The option as `lntune train` spells it (the field name where the CLI has none)."""
    return "--" + f.name.replace("_", "-") if f.metadata["flag"] else f.name


def _role(*roles: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(TrainConfig) if f.metadata["sweep"] in roles)


RULES: dict[str, Rule] = {f.name: f.metadata["rule"] for f in fields(TrainConfig)}
FLAGGED = tuple(f for f in fields(TrainConfig) if f.metadata["flag"])  # the fields `lntune train` has flags for
NO_FLAG = tuple(f.name for f in fields(TrainConfig) if not f.metadata["flag"])
GRID_OWNED = _role("grid")
NOT_IN_SWEEPS = _role("off")
MACHINE_FIELDS = _role("machine", "off")
LATE_FIELDS = _role("late")


def field_problem(name: str, value) -> str | None:
    """What is wrong with `value` for TrainConfig field `name` ("-1.0: must be ..."), or None."""
    return RULES[name].problem(value)


def check_config(config) -> None:
    """Every field of a TrainConfig against its rule, then the rules that join fields; numbers become
    plain int/float (numpy scalars would not survive json.dumps into skin.json)."""
    for f in fields(config):  # each field carries its rule (spec.train.option)
        value, rule = getattr(config, f.name), f.metadata["rule"]
        problem = rule.problem(value)
        if problem:
            name = "--" + f.name.replace("_", "-") if f.metadata["flag"] else f.name
            raise TrainingError(f"{name} {problem}")
        if value is not None:
            object.__setattr__(config, f.name, _plain(rule, value))
    if config.cache_bottom == "on" and config.frozen_bottom != "eval":
        raise TrainingError(
            "--cache-bottom on needs --frozen-bottom eval: the cached states are computed once, "
            "so the frozen layers below must run without dropout"
        )


def _plain(rule: Rule, value):
    if rule.kind in (int, float) and not isinstance(value, rule.kind):
        return rule.kind(value)
    return os.fspath(value) if rule.kind is str else value


def train_file_schema() -> dict:
    """The JSON Schema of a `lntune train --config` YAML file, built from TrainConfig's fields (types, ranges,
    defaults, help), for editors: a YAML language server completes and checks the keys as the file is written."""
    properties = {}
    for f in fields(TrainConfig):
        if f.name == "progress":  # a terminal setting, not a run's: read_train_file refuses it
            continue
        properties[f.name] = {**f.metadata["rule"].json_schema(), "description": f.metadata["help"],
                              **({"default": f.default} if f.default is None or not isinstance(f.default, float)
                                 or math.isfinite(f.default) else {})}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "lntune train --config FILE",
            "type": "object", "additionalProperties": False, "properties": properties}
