"""What one training run produced: `RunRecord` is the part of skin.json a run writes about itself (task, data,
training settings, kept metrics, timings), and `RunResult` is what `lntune.train_task` returns (the record, the
parameter counts and the skin folder). Both are frozen and refuse keys they do not know, so a misspelt key fails
where it is written, not where a reader silently misses it."""
from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict

Number = int | float  # int stays int (a step, an epoch): what was measured is what is written


class ResultKeyWarning(DeprecationWarning):
    """A result read like the dict it was before (rec["metrics"]); lntune's own code never does."""


class Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Counts(Part):
    """Parameter counts of a tuned model (method/tuning.Tuning.counts)."""

    tuned: int  # trainable parameters of the method (head excluded)
    head: int  # trainable parameters of the task head
    base: int  # parameters of the base model
    tuned_pct: float  # tuned / base, in percent: the papers' #Para.
    tuned_with_head_pct: float


class TaskInfo(Part):
    name: str  # the task as given (a registered name or a local:/conll: spec)
    head: str  # its head kind (heads.HEADS)
    labels: list[str]  # class names in index order; empty for regression and generation
    metric: str  # the main metric


class DataInfo(Part):
    train_limit: int | None  # as asked (None: the whole split)
    eval_limit: int | None
    train_size: int  # examples trained on
    dev_size: int  # examples early stopping read (a validation slice when val_limit is set)
    majority: dict[str, float | None] | None = None  # what always guessing one class scores, per split
    val_limit: Number | None = None  # sweeps: the validation slice carved out of train
    test_split: str | None = None  # the split the kept state was scored on as "test"
    test_size: int | None = None
    carved: bool | None = None  # True: no dev file, so the validation slice (val_limit) was carved from train

    @property
    def sizes(self) -> dict[str, int]:
        """train / val / test example counts (test is dev when no other split was scored)."""
        return {"train": self.train_size, "val": self.dev_size,
                "test": self.dev_size if self.test_size is None else self.test_size}


class Generation(Part):
    """Generation metrics of the kept state (evaluate/generate.generation_metrics)."""

    settings: dict[str, Any]  # limit, beams, batch size, split
    metrics: dict[str, float | None]  # None: the metric could not be computed here
    unavailable: dict[str, str] = {}  # metric -> why


class RunRecord(Part):
    """What a run writes about itself into skin.json, after the skin's own keys (lntune.skin.save_skin)."""

    command: str  # how to run it again
    task: TaskInfo
    data: DataInfo
    train: dict[str, Any]  # the TrainConfig as a mapping (older skins may hold fields this version lacks)
    metrics: dict[str, Number]  # validation metrics of the kept state, with its step and epoch
    steps: int  # optimizer steps taken
    train_seconds: float
    best_seconds: float | None  # training time until the kept state
    curve: list[dict[str, Number]] | None = None  # metrics on the test split after each listed epoch
    test: dict[str, Number] | None = None  # the kept state on the test split (sweeps)
    generation: Generation | None = None

    def skin_json(self) -> dict[str, Any]:
        """The keys skin.json holds: the optional ones only when the run produced them."""
        return self.model_dump(exclude_unset=True)

    @property
    def scored(self) -> dict[str, Number]:
        """The numbers a sweep reports: the test split's metrics when one was scored (else validation's), with
        the generation metrics that could be computed."""
        out = dict(self.metrics if self.test is None else self.test)
        if self.generation is not None:
            out.update({k: v for k, v in self.generation.metrics.items() if v is not None})
        return out

    def __getitem__(self, name: str) -> Any:
        # train_task returned a dict before; user code reading rec["metrics"] keeps working, with a note.
        warnings.warn(f"train_task returns an lntune.RunResult: read rec.{name}, not rec[{name!r}]",
                      ResultKeyWarning, stacklevel=2)
        return self.model_dump()[name]


class RunResult(RunRecord):
    """What `lntune.train_task` returns: the run's record, its parameter counts and where its skin is.

    >>> from lntune import RunResult, train_task
    >>> result = train_task("sst2", "minilm", "ln", out="runs/sst2-ln")  # doctest: +SKIP
    >>> result.metrics["accuracy"], result.counts.tuned, result.out  # doctest: +SKIP
    (0.8..., 9984, 'runs/sst2-ln')
    >>> list(RunResult.model_fields)[-2:]  # what it adds to the RunRecord that skin.json holds
    ['counts', 'out']
    """

    counts: Counts
    out: str | None  # the skin folder; None when no skin was saved (out=None)
