"""Ray backend: each job is a Ray task on an existing cluster; the driver still writes the store.

    lntune sweep CONFIG.yaml --ray auto          # the cluster this machine belongs to
    lntune sweep CONFIG.yaml --ray ray://head:10001
    lntune sweep CONFIG.yaml --ray local         # a throwaway single-machine cluster

A task asks for `resources.num_cpus` / `num_gpus` from the config; Ray sets CUDA_VISIBLE_DEVICES,
and accelerate inside the run places the model on the device it was given. Workers need lntune
installed and the data (and local model paths) at the same absolute paths as the driver.
Timing runs get a worker process of their own (max_calls=1), so their peak memory is their own.
"""
from __future__ import annotations

from lntune.errors import LntuneError
from lntune.sweep.run import execute


class RayBackend:
    name = "ray"

    def __init__(self, address: str, num_cpus: float = 1, num_gpus: float = 0) -> None:
        self.address = address
        self.resources = {"num_cpus": num_cpus, "num_gpus": num_gpus}
        self.capacity = 1 << 30  # Ray queues tasks against the cluster's resources
        self._refs: dict = {}  # ObjectRef -> tag
        self._own = False

    def __enter__(self) -> RayBackend:
        try:
            import ray
        except ImportError as e:
            raise LntuneError("--ray needs Ray: pip install 'lntune[ray]' (or pip install ray)") from e
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise LntuneError(f"--ray {self.address}: cannot connect ({e}); start the cluster with ray start "
                                  "--head, or use --ray local for a single-machine one") from e
            self._own = True
        self._ray = ray
        # A run that raises comes back as a result (execute never raises); Ray retries only a lost worker.
        opts = {**self.resources, "max_retries": 2}
        self._task = ray.remote(execute).options(**opts)
        self._fresh = ray.remote(max_calls=1)(execute).options(**opts)
        return self

    def __exit__(self, *exc) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._own:
            self._ray.shutdown()

    def submit(self, job: dict, tag: str) -> None:
        timing = job["kind"] == "run" and job["spec"].kind == "efficiency"
        self._refs[(self._fresh if timing else self._task).remote(job)] = tag

    def pids(self) -> dict[str, int]:
        return {}

    def helper_pids(self) -> list[int]:
        return []

    def wait(self) -> list[tuple[str, dict]]:
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        done = []
        for ref in ready:
            tag = self._refs.pop(ref)
            try:
                result = self._ray.get(ref)
            except Exception as e:  # the worker died, or Ray lost the task
                result = {"ok": False, "error": f"Ray task failed: {type(e).__name__}: {e}", "traceback": ""}
            done.append((tag, result))
        return done
