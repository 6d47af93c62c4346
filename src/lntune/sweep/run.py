"""One job, in the process that runs it: a training run, a timing run, or a task's Fisher.

`execute(job)` never raises: a run that fails comes back as {"ok": False, "error", "traceback"},
so a worker always reports. Jobs are plain data (specs, paths, mask bytes): the same job runs in a
local worker process or in a Ray task on another machine.

    python -m lntune.sweep.run SPEC.json [--mask MASK.safetensors] [--data-dir DIR]

runs one spec (e.g. copied from records.jsonl or failures.jsonl) here and prints its result.
"""
from __future__ import annotations

import json
import os
import platform
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from lntune.spec.masks import RANDOM
from lntune.spec.run import RunSpec
from lntune.analyse.change import abs_change, cell_table, ln_table
from lntune.analyse.fisher import FisherConfig, ln_names, save_fisher, task_fisher
from lntune.analyse.mask import MaskSpec, random_fraction, save_mask
from lntune.api import train_task
from lntune.data import get_task
from lntune.method import parts
from lntune.model import load_model
from lntune.plugins import load_plugins
from lntune.sweep.efficiency import measure
from lntune.train import TrainConfig


def machine() -> str:
    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{platform.machine()}, {os.cpu_count()} CPUs{gpu}, {platform.system()} {platform.release()}"


class LoadSampler:
    """The machine's 1-minute load average, sampled every `every` seconds while a run works: times are read
    against it, since the sweep's own count of runs in flight misses everything else the machine did."""

    def __init__(self, every: float = 15.0) -> None:
        self.every, self.samples, self._stop = every, [], threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> LoadSampler:
        if hasattr(os, "getloadavg"):  # Unix; elsewhere the run records no load
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if hasattr(os, "getloadavg"):
            self.samples.append(os.getloadavg()[0])

    @property
    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 2) if self.samples else None


def execute(job: dict) -> dict:
    """Run `job` here; errors are returned, not raised."""
    try:
        import torch

        load_plugins()  # a worker process has not seen the driver's plugins: their methods and heads register here
        torch.set_num_threads(job.get("threads", 1))
        with LoadSampler() as load:
            if job["kind"] == "fisher":
                out = _fisher(job)
            elif job["spec"].kind == "efficiency":
                out = measure(job["spec"], job.get("data_dir"), job.get("train", {}))
            else:
                out = _train(job)
        return {"ok": True, "machine": machine(), **out, **({"load": load.mean} if load.mean is not None else {})}
    except Exception as e:  # reported and recorded as a failure; the sweep goes on
        return {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


def _train(job: dict) -> dict:
    spec: RunSpec = job["spec"]
    data_dir = job.get("data_dir")
    config = TrainConfig(**{**spec.train, **job.get("train", {}), "progress": False})
    options = dict(spec.options)
    gen = spec.generation
    analysed = all(m.records_change for m in parts(spec.method)) and not spec.mask
    measured = {}
    with tempfile.TemporaryDirectory(prefix="lntune-run-") as tmp:
        if spec.mask:
            options["mask"] = str(_mask_file(spec, job.get("mask"), Path(tmp), data_dir))
        rec = train_task(
            spec.task, spec.model, spec.method, options, config, out=None, data_dir=data_dir,
            train_limit=spec.train_limit, eval_limit=spec.eval_limit, generate=gen.limit if gen else 0,
            num_beams=gen.num_beams if gen else 1, val_limit=spec.val_limit, test_split=spec.test_split or "dev",
            curve_epochs=tuple(spec.curve or ()), checkpoint=False,  # a sweep resumes by whole runs
            on_trained=(lambda tuning, base: measured.update(change=_change(tuning, base))) if analysed else None,
        )
    out = {"val": rec.metrics, "test": rec.scored, "counts": rec.counts.model_dump(), "steps": rec.steps,
           "train_seconds": rec.train_seconds, "best_seconds": rec.best_seconds, "sizes": rec.data.sizes}
    optional = {"majority": rec.data.majority, "change": measured.get("change"), "curve": rec.curve}
    return out | {k: v for k, v in optional.items() if v is not None}


def _change(tuning, base: dict) -> dict:
    """Mean |after - before| per (component, layer) and per (norm, term, layer) of the trained model, in memory
    against the base values it was loaded with: a few hundred numbers that stand in for the skin (a full
    fine-tune's is the whole model) in the record."""
    rows = abs_change(tuning.lm, {n: p.detach() for n, p in tuning.lm.model.named_parameters()}, "the trained model",
                      base_values=base)
    return {"cells": [[c, layer, d] for (c, layer), d in cell_table(rows).items()],
            "ln": [[n, term, layer, d] for (n, term, layer), d in ln_table(rows).items()]}


def _mask_file(spec: RunSpec, mask: bytes | None, folder: Path, data_dir) -> Path:
    """The run's LN mask as a file: sent by the driver (Fisher masks) or drawn here (random)."""
    path = folder / "mask.safetensors"
    m = spec.mask
    if m.kind != RANDOM:
        if mask is None:
            raise ValueError(f"run {spec.task} {m.kind} f={m.fraction}: the driver sent no mask")
        path.write_bytes(mask)
        return path

    t = get_task(spec.task)
    lm = load_model(spec.model, t.head, max(len(t.labels), 1))
    params = dict(lm.model.named_parameters())
    masks = random_fraction({n: params[n].shape for n in ln_names(lm)}, m.fraction, m.seed)
    return save_mask(path, masks, MaskSpec(RANDOM, m.fraction, spec.task, m.seed), [])


def _fisher(job: dict) -> dict:
    """A task's per-element LN Fisher, as the bytes of the safetensors file analyse writes."""
    s = job["settings"]
    config = FisherConfig(examples=s["examples"], batch_size=s["batch_size"], ln_only=True,
                          max_length=s["max_length"], seed=s["seed"], progress=False)
    result = task_fisher(job["task"], job["model"], config, job.get("data_dir"))
    with tempfile.TemporaryDirectory(prefix="lntune-fisher-") as tmp:
        return {"fisher": save_fisher(Path(tmp) / "fisher.safetensors", result).read_bytes()}


def _die_with_driver(alive) -> None:
    # The driver keeps the other end of `alive` open; it closes when the driver dies, even by SIGKILL.
    try:
        alive.recv()
    except (EOFError, OSError):
        pass
    os._exit(70)


def child_main(job: dict, result, alive, device: int | None = None) -> None:
    """Entry point of a local worker process: watch the driver, run the job, send the result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the driver ends workers
    threading.Thread(target=_die_with_driver, args=(alive,), daemon=True).start()
    if device is not None:  # before anything touches CUDA: accelerate then sees one GPU, cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device)
    out = execute(job)
    result.send(out)
    result.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", type=Path, help="JSON file: a record's spec, or a whole record")
    ap.add_argument("--mask", type=Path, help="LN mask file for a Fisher-masked run")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    spec = RunSpec.model_validate(spec.get("spec", spec))  # a record's spec, or the spec alone
    job = {"kind": "run", "spec": spec, "data_dir": args.data_dir, "threads": args.threads,
           "mask": args.mask.read_bytes() if args.mask else None}
    out = execute(job)
    print(json.dumps(out, indent=2))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
