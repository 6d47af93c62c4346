"""Local workers: every job in a fresh process, so memory peaks and crashes stay with their run.

Processes fork from a multiprocessing fork server that imported torch and transformers once, so a
run starts in milliseconds instead of seconds. Each worker holds the read end of a pipe whose write
end only the driver has: when the driver dies (even by SIGKILL) the pipe closes and the worker exits.
Workers never touch the results store; they send their result back through their own pipe.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.connection import wait as wait_any

from lntune.sweep.run import child_main
from lntune.sweep.warm import MODELS_ENV

# What every run imports (several seconds on a busy CPU), imported once by the fork server instead.
PRELOAD = ["lntune.sweep.run", "torch", "transformers", "accelerate", "lntune.api", "lntune.analyse.fisher",
           "lntune.sweep.efficiency", "transformers.modeling_utils", "transformers.optimization",
           "transformers.models.auto.modeling_auto", "transformers.models.auto.tokenization_auto",
           "sklearn.metrics", "scipy.stats", "seqeval.metrics", "lntune.sweep.warm"]


def warm_up(models: list[str]) -> mp.context.BaseContext:
    """Start the fork server's imports now (they take seconds), so they overlap the driver's own work."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # workers fork; keep tokenizers single-threaded
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    os.environ[MODELS_ENV] = "\n".join(models)  # read by lntune.sweep.warm inside the server
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # modules that fail to import are skipped
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return ctx


class LocalBackend:
    name = "local"

    def __init__(self, workers: int = 1, models: list[str] = (), devices: list[int] | None = None) -> None:
        self.capacity = max(1, workers)
        self.models = list(models)
        self.devices = list(devices or [])  # GPUs: each worker sees the least busy one
        self._running: dict[str, tuple] = {}  # tag -> (process, result connection, device)

    def __enter__(self) -> LocalBackend:
        self.ctx = warm_up(self.models)  # a no-op when the CLI started it already
        self._alive_r, self._alive_w = self.ctx.Pipe(duplex=False)
        return self

    def __exit__(self, *exc) -> None:
        for proc, conn, _ in self._running.values():
            proc.kill()
            proc.join(10)
            conn.close()
        self._running.clear()
        self._alive_w.close()  # closing twice is harmless
        self._alive_r.close()

    def submit(self, job: dict, tag: str) -> None:
        recv, send = self.ctx.Pipe(duplex=False)
        device = None
        if self.devices:
            busy = [d for _, _, d in self._running.values()]
            device = min(self.devices, key=busy.count)
        proc = self.ctx.Process(target=child_main, args=(job, send, self._alive_r, device), daemon=True,
                                name=f"lntune-{tag[:12]}")
        proc.start()
        send.close()  # the worker has its own copy: EOF here means it died
        self._running[tag] = (proc, recv, device)

    def pids(self) -> dict[str, int]:
        return {tag: proc.pid for tag, (proc, _, _) in self._running.items()}

    def helper_pids(self) -> list[int]:
        """The fork server's pid (it exits with the driver too)."""
        from multiprocessing import forkserver

        pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
        return [pid] if pid else []

    def wait(self) -> list[tuple[str, dict]]:
        """Block until at least one job ends; (tag, result) for each that did."""
        owner = {}
        for tag, (proc, conn, _) in self._running.items():
            owner[conn] = owner[proc.sentinel] = tag
        done = []
        for tag in dict.fromkeys(owner[o] for o in wait_any(list(owner))):
            proc, conn, _ = self._running.pop(tag)
            try:
                result = conn.recv()  # ready means data or EOF: never blocks for long
            except (EOFError, OSError):
                result = None
            conn.close()
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()
            done.append((tag, result if result is not None else _died(proc.exitcode)))
        return done


def _died(code: int | None) -> dict:
    why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    hint = " (SIGKILL: often out of memory; lower the batch size or the workers)" if code == -9 else ""
    return {"ok": False, "error": f"the worker process died without a result: {why}{hint}", "traceback": ""}
