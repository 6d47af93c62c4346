"""The sweep driver: skip what the store has, run the rest on a backend, append each result.

Phases: timing runs one at a time (nothing else running), then the Fisher of every task that masked
runs need (files under RESULTS/fisher/, reused on resume), then the training runs on all workers.
The driver alone writes the store, one whole line per finished run, so a crash anywhere loses at
most the runs in flight, and re-running the same command picks up where it stopped.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from lntune.sweep.config import AnalysisPlan, SweepConfig
from lntune.spec.masks import RANDOM
from lntune.spec.metrics import greater_is_better
from lntune.spec.run import canonical
from lntune.sweep.grid import Run, plan
from lntune.spec.records import VERSION, Record, parse_record
from lntune.sweep.store import Store, write_atomic
from lntune.analyse.files import write_bytes
from lntune.analyse.fisher import load_fisher
from lntune.analyse.mask import build_mask, MaskSpec, save_mask
from lntune.data import resolve_data_dir
from lntune.sweep.local import LocalBackend


@dataclass
class SweepReport:
    results: Path
    total: int  # runs in the grid
    skipped: int  # already in the store when the sweep started
    done: int = 0  # finished and recorded by this invocation
    failed: list[dict] = field(default_factory=list)  # failures of this invocation

    @property
    def ok(self) -> bool:
        return not self.failed


def results_dir(cfg: SweepConfig, results: str | Path | None) -> Path:
    return Path(results or cfg.results or Path("results") / cfg.name)


def run_sweep(cfg: SweepConfig, results: str | Path | None = None, backend=None, data_dir: str | Path | None = None,
              progress: bool = True, redo_timing: bool = False) -> SweepReport:
    """Run every run of `cfg` that RESULTS/records.jsonl lacks; returns what happened.

    `redo_timing` first retires every timing record in RESULTS (to RESULTS/retired.jsonl), e.g. when
    something else loaded the machine while they ran, so they are measured again. Stale ones from an
    earlier `efficiency:` setting go too: the report averages every timing record of a method."""
    root = resolve_data_dir(data_dir or cfg.data_dir)
    data = str(Path(root).resolve()) if root else None  # workers may run elsewhere: absolute paths
    if backend is None:
        backend = LocalBackend(cfg.workers, [m.name for m in cfg.models], cfg.devices)
    with Store(results_dir(cfg, results)) as store, backend:
        if redo_timing:
            store.retire({r.key for r in store.records() if r.is_timing})
        write_design(store, cfg)
        done = {r.key: r for r in store.records()}
        p = plan(cfg, data, done)
        pending = [r for r in p.runs if r.key not in done]
        report = SweepReport(store.dir, len(p.runs) + p.waiting, len(p.runs) - len(pending))
        ex = _Executor(cfg, store, backend, report, data, progress)
        tried: set[str] = set()
        try:
            ex.run_all([r for r in pending if r.kind == "efficiency"], limit=1)
            # Rounds: the lr_seed's runs name the other seeds' runs once they are recorded.
            while train := [r for r in pending if r.kind == "train" and r.key not in tried]:
                tried |= {r.key for r in train}
                ex.fishers(train)
                ex.run_all(train, limit=backend.capacity)
                done = {r.key: r for r in store.records()}
                p = plan(cfg, data, done)
                pending = [r for r in p.runs if r.key not in done]
                report.total = report.skipped + report.done + len(pending) + p.waiting + len(report.failed)
                ex.bar.total = report.total
        finally:
            ex.close()
    return report


def write_design(store: Store, cfg: SweepConfig) -> None:
    """RESULTS/design.json: the analysis plan and the lr rule, fixed before the runs (the report reads it)."""
    import json
    from dataclasses import asdict

    if cfg.analysis is None and cfg.lr_growth is None and cfg.sequential is None and not cfg.registered:
        return  # nothing was registered: the report describes the runs (findings), it decides no claim
    # Settings left at None are left out, so a design written before they existed reads the same.
    design = {"sweep": cfg.name, "lr_seed": cfg.lr_seed, "seeds": cfg.seeds,
              "analysis": {k: v for k, v in asdict(cfg.analysis or AnalysisPlan()).items() if v is not None}}
    if cfg.lr_growth is not None:
        design["lr_growth"] = {**asdict(cfg.lr_growth), "ladder": "1-3-10 (1e-3, 3e-3, 1e-2, ...)"}
    if cfg.sequential is not None:
        design["sequential"] = {**asdict(cfg.sequential), "interval": "t, task-stratified, Welch-Satterthwaite df"}
        design["sequential"]["contrasts"] = [list(c) for c in cfg.sequential.contrasts]
    if cfg.registered:
        design["registered"] = cfg.registered
    write_atomic(store.dir / "design.json", (json.dumps(design, indent=1) + "\n").encode())


class _Executor:
    def __init__(self, cfg: SweepConfig, store: Store, backend, report: SweepReport, data_dir: str | None,
                 progress: bool) -> None:
        from tqdm.auto import tqdm

        self.cfg, self.store, self.backend, self.report, self.data_dir = cfg, store, backend, report, data_dir
        self.running: dict[str, Run] = {}
        self.in_flight: dict[str, int] = {}  # key -> most runs in flight at once while it ran
        self.fisher_running: dict[str, str] = {}  # fisher file -> task
        self.fisher_failed: dict[str, str] = {}  # fisher file -> error
        self.commit = commit()
        self.started = _now()
        self.bar = tqdm(total=report.total, initial=report.skipped, desc=f"sweep {cfg.name}", unit="run",
                        disable=not progress, file=sys.stderr, dynamic_ncols=True)
        self._show()

    def close(self) -> None:
        self.bar.close()
        self._status()

    # -- training and timing runs -------------------------------------------------------------------
    def run_all(self, runs: list[Run], limit: int) -> None:
        queue = list(reversed(runs))
        while queue or self.running:
            while queue and len(self.running) < limit:
                run = queue.pop()
                job = self._job(run)
                if isinstance(job, str):
                    self._failed(run, {"error": job, "traceback": ""})
                    continue
                self.backend.submit(job, run.key)
                self.running[run.key] = run
                for key in self.running:
                    self.in_flight[key] = max(self.in_flight.get(key, 0), len(self.running))
                self._show()
            if self.running:
                for key, result in self.backend.wait():
                    run, in_flight = self.running.pop(key), self.in_flight.pop(key, None)
                    if result.get("ok"):
                        self.store.append(make_record(run, result, self.cfg.name, self.commit, in_flight))
                        self.report.done += 1
                        self.bar.update(1)
                    else:
                        self._failed(run, result)
                self._show()

    def _job(self, run: Run) -> dict | str:
        """The job a worker runs, or why it cannot run."""
        threads = run.spec.efficiency.threads if run.kind == "efficiency" else self.cfg.threads
        job = {"kind": "run", "spec": run.spec, "data_dir": self.data_dir, "threads": threads, "mask": None,
               "train": run.machine}
        mask = run.spec.mask
        if mask and mask.kind != RANDOM:
            missing = [self.fisher_failed[p] for p in self._fisher_files(run) if p in self.fisher_failed]
            if missing:
                return f"the Fisher this mask needs failed: {missing[0]}"
            try:
                job["mask"] = self._mask_bytes(run)
            except Exception as e:  # e.g. a Fisher file someone edited: fail this run, not the sweep
                return f"building its mask failed: {type(e).__name__}: {e}"
        return job

    def _failed(self, run: Run, result: dict) -> None:
        failure = {"key": run.key, "spec": run.spec.as_json(), "sweep": self.cfg.name, "row": run.row,
                   "group": run.group, "run": run.describe(), "error": result.get("error"), "traceback": result.get("traceback", ""),
                   "failed_at": _now()}
        self.store.append_failure(failure)
        self.report.failed.append(failure)
        self.bar.write(f"FAILED {run.describe()}: {failure['error']}")

    # -- Fisher files and masks -----------------------------------------------------------------------
    def _fisher_files(self, run: Run) -> dict[str, tuple[str, dict]]:
        """{file: (task, settings, model)} of the Fisher files a masked run needs."""
        model, f = run.spec.model, run.spec.mask.fisher
        settings = {"examples": f.examples, "batch_size": f.batch_size, "max_length": f.max_length, "seed": f.seed}
        out = {}
        for task in f.tasks:
            ident = {"model": model, "task": task, "settings": settings, "data": f.data[task]}
            h = hashlib.sha256(canonical(ident)).hexdigest()[:16]
            out[str(self.store.dir / "fisher" / f"fisher-{task}-{h}.safetensors")] = (task, settings, model)
        return out

    def fishers(self, runs: list[Run]) -> None:
        """Compute the missing Fisher files masked runs need, on all workers."""
        need: dict[str, tuple] = {}
        for run in runs:
            if run.spec.mask and run.spec.mask.kind != RANDOM:
                need.update(self._fisher_files(run))
        todo = {p: v for p, v in need.items() if not Path(p).exists()}
        queue = list(todo.items())
        running = self.fisher_running
        while queue or running:
            while queue and len(running) < self.backend.capacity:
                path, (task, settings, model) = queue.pop(0)
                job = {"kind": "fisher", "task": task, "model": model, "settings": settings,
                       "data_dir": self.data_dir, "threads": self.cfg.threads}
                self.backend.submit(job, path)
                running[path] = task
                self.bar.set_description(f"sweep {self.cfg.name}: Fisher of {task}")
                self._status()
            for path, result in self.backend.wait():
                task = running.pop(path)
                if result.get("ok"):
                    write_bytes(path, result["fisher"])
                else:
                    self.fisher_failed[path] = f"Fisher of {task}: {result.get('error')}"
                    self.store.append_failure({"kind": "fisher", "task": task, "file": path, "sweep": self.cfg.name,
                                               "error": result.get("error"), "traceback": result.get("traceback", ""),
                                               "failed_at": _now()})
                    self.bar.write(f"FAILED Fisher of {task}: {result.get('error')}")
            self._status()
        self.bar.set_description(f"sweep {self.cfg.name}")

    def _mask_bytes(self, run: Run) -> bytes:
        """Build the run's mask from the Fisher files and keep a copy under RESULTS/masks/."""
        m, task = run.spec.mask, run.spec.task
        fishers = {t: load_fisher(p)[0] for p, (t, _, _) in self._fisher_files(run).items()}
        spec = MaskSpec(m.kind, m.fraction, task)
        h = hashlib.sha256(canonical([run.spec.model, run.spec.as_json()["mask"]])).hexdigest()[:12]
        path = self.store.dir / "masks" / f"{task}-{m.kind}-f{m.fraction:g}-{h}.safetensors"
        if not path.exists():
            save_mask(path, build_mask(spec, fishers), spec, sorted(fishers))
        return path.read_bytes()

    # -- progress and status ------------------------------------------------------------------------
    def _show(self) -> None:
        self.bar.set_postfix(skipped=self.report.skipped, failed=len(self.report.failed), running=len(self.running),
                             refresh=False)
        self.bar.refresh()
        self._status()

    def _status(self) -> None:
        pids = self.backend.pids()
        self.store.write_status({
            "pid": os.getpid(), "sweep": self.cfg.name, "config": str(self.cfg.path), "backend": self.backend.name,
            "started_at": self.started, "updated_at": _now(), "total": self.report.total,
            "skipped": self.report.skipped, "done": self.report.done, "failed": len(self.report.failed),
            "running": [{"key": k, "run": r.describe(), "pid": pids.get(k)} for k, r in self.running.items()]
            + [{"key": None, "run": f"Fisher of {t}", "pid": pids.get(p)} for p, t in self.fisher_running.items()],
            "helpers": self.backend.helper_pids(),
        })


def val_score(val: dict | None, metric: str) -> tuple[float | None, str | None]:
    """(score the lr choice uses, its name): the main metric, else the loss, signed like the metric."""
    if not val:
        return None, None
    if metric in val:
        return val[metric], metric
    if not greater_is_better(metric):
        return val["loss"], "loss"
    return -val["loss"], "-loss"  # higher is better, like the metric it stands in for


def make_record(run: Run, result: dict, sweep: str, commit_sha: str | None, in_flight: int | None = None) -> Record:
    """The store's record of a finished run: `result` is a worker's answer (sweep/run.execute); `in_flight` is
    the most runs the sweep had at once while it ran (timings are read against it)."""
    spec = run.spec
    val, test = result.get("val"), result.get("test")
    score, val_metric = val_score(val, run.metric)
    return parse_record({
        "key": run.key, "spec": spec.as_json(), "sweep": sweep, "row": run.row, "group": run.group,
        "task": spec.task, "task_kind": run.task_kind, "metric": run.metric,
        "method": spec.method, "model": spec.model, "lr": run.lr, "lr_rank": run.lr_rank, "seed": run.seed,
        "val": val, "val_score": score, "val_metric": val_metric,
        "test": test, "score": None if test is None else test.get(run.metric),
        "counts": result["counts"], "steps": result["steps"], "train_seconds": result["train_seconds"],
        "efficiency": result.get("efficiency"), "picks_lr": run.picks_lr,
        **{k: result[k] for k in ("majority", "change", "best_seconds", "curve", "sizes", "load") if k in result},
        "finished_at": _now(), "machine": result.get("machine"), "commit": commit_sha, "version": VERSION,
        **({"in_flight": in_flight} if in_flight is not None else {}),
    }, f"the result of {run.describe()}")


def commit() -> str | None:
    """The git commit of the lntune checkout, read from .git (no git binary needed); None if not one."""
    return git_commit(Path(__file__).resolve().parents[3])  # src/lntune/sweep/driver.py -> the checkout


def git_commit(checkout: Path) -> str | None:
    """HEAD's commit of the checkout at `checkout`: a clone (.git a folder) or a `git worktree` (.git a file
    naming the worktree's folder, whose `commondir` leads to the shared refs)."""
    git = checkout / ".git"
    try:
        if git.is_file():
            line = git.read_text().strip()
            if not line.startswith("gitdir: "):
                return None
            git = (checkout / line[8:]).resolve()
        common = (git / (git / "commondir").read_text().strip()).resolve() if (git / "commondir").is_file() else git
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        for folder in (git, common):
            if (folder / ref).exists():
                return (folder / ref).read_text().strip()
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        return None
    return None


def _now() -> str:
    return datetime.fromtimestamp(time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
