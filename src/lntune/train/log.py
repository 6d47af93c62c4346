"""What a run logs as it trains: OUT/metrics.jsonl (every step's loss and lr, every evaluation) and,
with --report-to, accelerate's experiment trackers (TensorBoard, W&B, MLflow).

The file is the record that needs no tracker: one JSON object per line, `{"step", "epoch", "loss", "lr"}`
for a step and `{"step", "epoch", "eval": {...metrics}}` for an evaluation. Only the main process of a
multi-process launch writes; a resumed run drops the lines after its checkpoint and goes on."""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path

from lntune.durable import make_dir
from lntune.errors import DiskError, TrainingError

METRICS = "metrics.jsonl"
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",)}


def trackers(report_to: str) -> list[str]:
    """The tracker names of a --report-to value ("none", "wandb", "tensorboard,wandb")."""
    return [] if report_to == "none" else report_to.split(",")


def check_tracker(report_to: str) -> None:
    """A clear error, before training, when a tracker's package is missing."""
    import importlib.util

    for name in trackers(report_to):
        wanted = _PACKAGES.get(name, ())
        if wanted and not any(importlib.util.find_spec(p) for p in wanted):
            which = name if name == report_to else f"{report_to}: {name}"
            raise TrainingError(f"--report-to {which} needs the {wanted[0]} package: pip install {wanted[0]}")


class RunLog:
    """Call `step` after each optimizer step and `evaluation` after each evaluation; `close` at the end."""

    def __init__(self, out: str | Path | None, acc, config: dict, resumed_step: int | None = None,
                 project: str = "lntune") -> None:
        self.acc, self.file = acc, None
        self.trackers = bool(trackers(config.get("report_to", "none")))
        if not acc.is_main_process:
            return
        if out is not None:
            self.path = path = Path(out) / METRICS
            kept = _lines_until(path, resumed_step) if resumed_step is not None else []
            with self._refused():
                make_dir(path.parent)
                self.file = path.open("w", encoding="utf-8")
                self.file.writelines(kept)
                self.file.flush()
        if self.trackers:
            acc.init_trackers(project, config={k: _plain(v) for k, v in config.items()})

    def step(self, step: int, epoch: int, loss: float, lr: float) -> None:
        self._write({"step": step, "epoch": epoch, "loss": loss, "lr": lr})
        if self.trackers:
            self.acc.log({"train/loss": loss, "train/lr": lr}, step=step)

    def evaluation(self, metrics: dict) -> None:
        values = {k: v for k, v in metrics.items() if k not in ("step", "epoch")}
        self._write({"step": metrics["step"], "epoch": metrics["epoch"], "eval": values})
        if self.trackers:
            numbers = {f"eval/{k}": v for k, v in values.items() if isinstance(v, (int, float))}
            self.acc.log(numbers, step=metrics["step"])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.trackers:
            self.acc.end_training()
            self.trackers = False

    def _write(self, row: dict) -> None:
        if self.file is not None:
            with self._refused():
                self.file.write(json.dumps(row, allow_nan=True) + "\n")
                self.file.flush()  # a killed run keeps its lines up to the kill

    @contextmanager
    def _refused(self):
        """A write the file system refuses (a full disk, say) stops training with one line saying how to go on."""
        try:
            yield
        except (OSError, DiskError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise TrainingError(f"could not write {self.path} ({reason}): training stopped; free space, then "
                                f"lntune train --resume {self.path.parent} continues from its last checkpoint") from None


def _lines_until(path: Path, step: int) -> list[str]:
    """The lines of an interrupted run's file up to its checkpoint's step (the resumed run writes the rest)."""
    if not path.exists():
        return []
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the line a kill cut short
            break
        if not isinstance(row, dict) or row.get("step", math.inf) > step:
            break
        kept.append(line if line.endswith("\n") else line + "\n")
    return kept


def _plain(value):
    """Tracker configs take numbers, strings and booleans (TensorBoard's hparams refuse None)."""
    return value if isinstance(value, (int, float, str, bool)) else str(value)
