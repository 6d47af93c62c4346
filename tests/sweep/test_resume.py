"""SIGKILL the sweep driver at several points, resume with the same command: the records end up
identical to an uninterrupted sweep's, with no duplicate or partial line and no worker left behind."""
import json
import os
import signal
import subprocess
import sys
import time

from lntune.sweep.store import read_records

from .conftest import comparable


def _parents() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out[int(entry)] = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    return out


def _descendants(pid: int) -> set[int]:
    """The driver's process tree: fork server, resource tracker, workers."""
    parents, found, frontier = _parents(), set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _status(results, pid: int) -> dict | None:
    try:
        st = json.loads((results / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return st if st["pid"] == pid else None  # not a status left by the driver killed before


def _lines(results) -> int:
    path = results / "records.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def kill_when(cmd, results, ready, timeout: float = 180) -> None:
    """Start the driver, SIGKILL it once ready(status, records) holds, and check its processes all end."""
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while True:
        st = _status(results, proc.pid)
        if st is not None and ready(st, _lines(results)):
            break
        assert proc.poll() is None, f"the sweep ended before the kill point: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.02)
    tree = _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert set(st["helpers"]) <= tree  # the fork server; workers listed in st may have just ended
    # Workers end as soon as their pipe from the driver closes; the fork server once its imports are done.
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    strays = {p for p in tree if _alive(p)}
    for pid in strays:  # do not leave them running when the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert not strays, f"processes outlived the driver: {strays}"


def assert_clean(results) -> list[dict]:
    """Every line whole and parsable, every key once."""
    raw = (results / "records.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    recs = [json.loads(line) for line in raw.splitlines()]
    assert len({r["key"] for r in recs}) == len(recs)
    return recs


def test_sigkill_at_several_points_then_resume(reference, tmp_path):
    path, _, expected = reference
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "lntune.sweep.cli", str(path), "--results", str(results), "--no-progress"]
    train = lambda st: any(r["key"] for r in st["running"])  # noqa: E731 - a training/timing run in flight
    # 1: while it starts (workers' imports under way, nothing recorded)
    kill_when(cmd, results, lambda st, n: True)
    assert _lines(results) == 0
    # 2: after a few records, with runs in flight
    kill_when(cmd, results, lambda st, n: train(st) and n >= 5 and st["helpers"])
    done = assert_clean(results)
    assert 5 <= len(done) < len(expected)
    # 3: resume to the end
    out = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{len(done)} were already in" in out.stdout
    assert len(assert_clean(results)) == len(expected)
    assert comparable(read_records(results)) == comparable(expected)
