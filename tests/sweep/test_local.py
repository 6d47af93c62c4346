import os
import signal
import time

from lntune.sweep.local import LocalBackend


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_worker_dies_with_its_driver(reference, data_dir):
    """Closing the driver's end of the pipe (as the kernel does when the driver is SIGKILLed) ends a
    worker in the middle of a run that would otherwise take hours."""
    spec = next(r.spec for r in reference[2] if r.spec.kind == "train")
    spec = spec.model_copy(update={"train": {**spec.train, "max_steps": 10**7, "eval_every": None}})
    job = {"kind": "run", "spec": spec, "data_dir": str(data_dir), "threads": 1, "mask": None}
    with LocalBackend(1) as backend:
        backend.submit(job, "endless")
        time.sleep(1.5)  # into training
        pid = backend.pids()["endless"]
        backend._alive_w.close()
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        survived = _alive(pid)
        if survived:
            os.kill(pid, signal.SIGKILL)
        [(tag, result)] = backend.wait()
    assert not survived, "the worker outlived its driver"
    assert tag == "endless" and not result["ok"] and "exit code 70" in result["error"], result
