"""Dev metric against the fraction of LN elements trained, per mask kind (paper 002 fig. 2 and 5)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lntune.analyse.files import write_json
from lntune.analyse.mask import KINDS, MaskSpec, build_mask, save_mask
from lntune.data import get_task
from lntune.method.paper import LN  # paper 002 fig. 5: LN-tuning under each mask
from lntune.train import TrainConfig
from lntune.api import train_task

FRACTIONS = tuple(round(0.1 * i, 1) for i in range(1, 11))


@dataclass
class CurveConfig:
    fractions: tuple[float, ...] = FRACTIONS  # shares of the LN elements that train
    kinds: tuple[str, ...] = KINDS  # mask kinds, one line each
    seed: int = 42  # random masks
    train: TrainConfig = field(default_factory=TrainConfig)  # LN-tuning of every point
    train_limit: int | None = 3000  # seeded training subset per run
    eval_limit: int | None = None  # seeded dev subset per run


def _digest(masks: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for n in sorted(masks):
        h.update(n.encode() + masks[n].numpy().tobytes())
    return h.hexdigest()


def run_curve(
    model: str,
    tasks: list[str],
    fishers: dict[str, dict[str, torch.Tensor]],
    out: str | Path,
    config: CurveConfig | None = None,
    data_dir=None,
    norm_map: dict | None = None,
) -> list[dict]:
    """Train LN-tuning with every (task, kind, fraction) mask; one row per point.

    A mask equal to one already trained for the task (every kind at f = 1) reuses that run.
    curve.json is rewritten after each run, so an interrupted curve keeps what it has.
    """
    config, out = config or CurveConfig(), Path(out)
    rows, done = [], {}
    for task in tasks:
        metric = get_task(task).metric
        for kind in config.kinds:
            for f in config.fractions:
                spec = MaskSpec(kind, f, task, config.seed)
                masks = build_mask(spec, fishers)
                key = (task, _digest(masks))
                if key not in done:
                    path = save_mask(out / "masks" / task / spec.file_name, masks, spec, sorted(fishers))
                    run = out / "runs" / f"{task}-{kind}-f{f:g}"
                    rec = train_task(
                        task,
                        model,
                        LN,
                        {"mask": str(path)},
                        config.train,
                        run,
                        data_dir,
                        config.train_limit,
                        config.eval_limit,
                        norm_map=norm_map,
                        overwrite=True,  # the curve's own run folders: a rerun redoes them
                        checkpoint=False,
                    )
                    done[key] = {
                        "selected": rec.counts.tuned,
                        "value": rec.metrics[metric],
                        "loss": rec.metrics["loss"],
                        "run": str(run),
                    }
                rows.append({"task": task, "kind": kind, "fraction": f, "metric": metric, **done[key]})
                write_json(out / "curve.json", rows)
    return rows
