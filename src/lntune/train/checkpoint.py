"""Checkpoints of a training run in its output folder, so `lntune train --resume RUN_DIR` continues it.

At each evaluation the run writes RUN_DIR/checkpoint/state.pt (one torch.save file: temp file, fsync,
rename, folder fsync, so a crash leaves the previous checkpoint or the new one, never a mix):

- `run`: the arguments of lntune.api.train_task (task, model, method, options, training settings, data
  limits, ...), so a resume needs nothing but the folder;
- `current`: the tuned tensors as they are now (Tuning.state(); PackedAdamW's flat buffers are rebuilt
  from them), `optimizer` and `schedule`: their state_dicts, `scaler`: fp16's loss scaler;
- `rng`: the python, numpy and torch (and CUDA) generators of every process, taken at the checkpoint;
  `loader`: the state of the train loader's generator at the start of the epoch the run is in, and
  `position`: that epoch and the number of its batches already trained (the resumed run re-creates the
  epoch's order from that generator and skips those batches), whether training is done, and the
  epoch's training time so far;
- `snapshot` and `progress`: the best state so far (tensors; its metrics, loss and the evaluations
  without improvement for patience), the history, the step count, every step's loss and the clocks;
- `cache`: what the frozen-bottom cache recorded, in order, so a resumed run refills it with the same
  batches and serves bit-identical rows;
- `model` and `data`: the base model's fingerprint and a digest of the encoded examples, so a resume
  on other weights or other data is refused.

A resumed run reproduces the uninterrupted run bit for bit on CPU (the same process count and threads).
When the run ends and its skin is saved, the checkpoint folder is removed: a finished run is its skin."""
from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from lntune.durable import fsync_dir, make_dir, next_dir, replace_folder, write_atomic
from lntune.errors import DiskError, LntuneError, TrainingError
from lntune.spec.files import CHECKPOINT_DIR
from lntune.spec.train import TrainConfig
from lntune.train.step import is_main_process

DIR = CHECKPOINT_DIR
STATE = "state.pt"
FORMAT = 1
# Arguments a resume may change: where things are, and how much is printed.
VOLATILE = ("out", "data_dir", "overwrite")
VOLATILE_TRAIN = ("progress",)


def state_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / DIR / STATE


def _normal(run: dict) -> dict:
    """`run` as JSON values (paths become strings), comparable with a loaded one."""
    return json.loads(json.dumps(run, default=str))


def _comparable(run: dict) -> dict:
    run = {k: v for k, v in _normal(run).items() if k not in VOLATILE}
    run["config"] = {k: v for k, v in run.get("config", {}).items() if k not in VOLATILE_TRAIN}
    return run


def load(run_dir: str | Path) -> dict:
    """The checkpoint in `run_dir`, or an LntuneError that says why there is none."""
    run_dir = Path(run_dir)
    path = state_path(run_dir)
    if not run_dir.is_dir():
        raise LntuneError(f"--resume {run_dir}: no such folder")
    if (run_dir / "skin.json").is_file():  # (a checkpoint left beside it: killed while removing it)
        staged = next_dir(run_dir)  # a run replacing this finished skin works there (lntune.api._start)
        if state_path(staged).is_file() and not (staged / "skin.json").is_file():
            return load(staged)
        if (staged / "skin.json").is_file():  # its new skin was whole, and killed before taking the old one's place
            replace_folder(staged, run_dir)
            raise LntuneError(f"--resume {run_dir}: the run replacing this skin had finished; its new skin was "
                              "waiting beside it and is now in place, so there is nothing to resume")
        raise LntuneError(f"--resume {run_dir}: that run finished (its skin is there); nothing to resume")
    if not path.is_file():
        raise LntuneError(
            f"--resume {run_dir}: no checkpoint ({DIR}/{STATE}); lntune train writes one at each evaluation, "
            "so this run stopped before its first evaluation (start it again) or is not an lntune train run"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
        raise LntuneError(f"--resume {run_dir}: {path} is unreadable ({type(e).__name__}: {e}); start the run again") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise LntuneError(f"--resume {run_dir}: {path} is not a checkpoint this lntune writes (format {FORMAT})")
    payload["run"] = json.loads(payload["run"])
    return payload


def run_args(run_dir: str | Path, data_dir: str | Path | None = None, progress: bool | None = None) -> dict:
    """lntune.api.train_task's keyword arguments that continue the run in `run_dir` (resume=True);
    `data_dir` and `progress` may differ from the first run's."""
    run = load(run_dir)["run"]
    config = dict(run.pop("config"))
    if progress is not None:
        config["progress"] = progress
    run.update(config=TrainConfig(**config), out=str(run_dir), resume=True, checkpoint=True)
    if data_dir is not None:
        run["data_dir"] = str(data_dir)
    return run


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def rng_state() -> dict:
    """Every global generator a training step may draw from (FastDropout and dropout: torch's)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


class Checkpointer:
    """One run's checkpoints: `save` at each evaluation (every process calls it; the main one writes),
    `resumed` holds the loaded checkpoint when the run continues one, `finish` removes it."""

    def __init__(self, run_dir: str | Path, run: dict, resumed: dict | None = None) -> None:
        self.dir = Path(run_dir) / DIR
        self.run = _normal(run)
        self.resumed = resumed
        self.saves = 0
        self._data: str | None = None

    @classmethod
    def start(cls, run_dir: str | Path | None, run: dict, resume: bool = False, overwrite: bool = False) -> Checkpointer:
        """Checkpoints for a run with arguments `run` (train_task's; JSON-able) in `run_dir`. With `resume`,
        the checkpoint there must be from a run with the same arguments; without it, an interrupted run's
        checkpoint there is refused unless `overwrite` (then it goes)."""
        if run_dir is None:
            raise LntuneError("checkpoints and --resume need the run's output folder (--out)")
        if resume:
            payload = load(run_dir)
            saved, given = _comparable(payload["run"]), _comparable(run)
            if saved != given:
                raise LntuneError(f"--resume {run_dir}: the checkpoint is from a run with other settings ({_diff(saved, given)})")
            return cls(run_dir, run, payload)
        path = state_path(run_dir)
        if path.exists():
            if not overwrite:
                raise LntuneError(
                    f"--out {run_dir}: an interrupted run's checkpoint is there ({DIR}/{STATE}); continue it with "
                    f"--resume {run_dir}, or pass --overwrite to start again"
                )

            if is_main_process():
                shutil.rmtree(path.parent, ignore_errors=True)
        return cls(run_dir, run)

    def data_digest(self, train_feats: list[dict], dev_feats: list[dict]) -> str:
        if self._data is None:
            self._data = _digest(train_feats, dev_feats)
        return self._data

    def save(self, acc, payload: dict) -> None:
        """Gather every process's RNG states, then the main process writes `payload` with them."""
        from accelerate.utils import gather_object

        rngs = gather_object([rng_state()]) if acc.num_processes > 1 else [rng_state()]
        self.saves += 1
        if not acc.is_main_process:
            return
        buf = io.BytesIO()
        torch.save({**payload, "format": FORMAT, "run": json.dumps(self.run), "rng": rngs,
                    "world_size": acc.num_processes}, buf)
        try:
            make_dir(self.dir)
            fsync_dir(self.dir.parent)
            write_atomic(self.dir / STATE, buf.getvalue())
        except DiskError as e:
            kept = "the previous checkpoint stands" if self.saves > 1 or self.resumed else "no checkpoint was kept"
            raise TrainingError(f"{e}: training stopped and this evaluation's checkpoint was not written ({kept}); "
                                f"free space, then lntune train --resume {self.dir.parent} continues") from None

    def check(self, acc, model_fingerprint: str, data: str) -> None:
        """A resumed run must have what the checkpointed one had: processes, base weights, examples."""
        saved = self.resumed
        where = self.dir.parent
        if saved["world_size"] != acc.num_processes:
            raise TrainingError(f"--resume {where}: the checkpoint was written by {saved['world_size']} processes; "
                                f"resume it with {saved['world_size']}, not {acc.num_processes}")
        if saved["model"] != model_fingerprint:
            raise TrainingError(f"--resume {where}: the base model's weights differ from the checkpointed run's")
        if saved["data"] != data:
            raise TrainingError(f"--resume {where}: the training or dev examples differ from the checkpointed run's "
                                "(changed data files, or another --data-dir)")

    def finish(self) -> None:
        """The run's skin is saved: its checkpoint goes (main process)."""
        if self.dir.exists():
            shutil.rmtree(self.dir)
            fsync_dir(self.dir.parent)


def _diff(saved: dict, given: dict, prefix: str = "") -> str:
    for key in sorted(set(saved) | set(given)):
        a, b = saved.get(key), given.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and a != b:
            return _diff(a, b, f"{prefix}{key}.")
        if a != b:
            return f"{prefix}{key}: {a!r} there, {b!r} here"
    return "?"


def progress(state) -> str:
    """The loop's bookkeeping (a dataclass, its tensors excluded) as exact JSON."""
    values = {f.name: getattr(state, f.name) for f in fields(state) if f.name != "snapshot"}
    return json.dumps(values, default=lambda o: o.item() if hasattr(o, "item") else str(o))
