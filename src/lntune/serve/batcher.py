"""Requests that arrive together generate together: concurrent requests, whatever skins they name, are
merged into one mixed batch.

Each request is checked in its own thread first (SkinBank.prepare), so a bad one gets its 4xx at once and
never joins a batch. A worker thread takes the first waiting request, gathers whatever else arrives within
`window` seconds (up to the bank's batch size in rows), and runs them as one SkinBank.generate call; token
callbacks and results go back to each request. If the merged batch fails (a skin removed between the check
and the batch), its requests are run one by one, so the error reaches only the request it belongs to.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from lntune.serve.bank import SkinBank
from lntune.serve.generate import Generated, OnText, OnToken

POLL = 0.1  # seconds between checks that a waiting request's client is still there


@dataclass
class _Job:
    requests: list
    on_token: OnToken | None
    on_text: OnText | None
    abandoned: bool = False  # its client went away: its rows stop at their next token
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Generated] | None = None
    error: BaseException | None = None


class Batcher:
    def __init__(self, bank: SkinBank, window: float = 0.005) -> None:
        self.bank, self.window = bank, window
        self.batches = 0  # generate calls made: fewer than requests when they were merged
        self._queue: queue.Queue[_Job] = queue.Queue()
        threading.Thread(target=self._loop, daemon=True, name="lntune-batcher").start()

    def generate(self, requests: list, on_token: OnToken | None = None, on_text: OnText | None = None,
                 gone: Callable[[], bool] | None = None) -> list[Generated]:
        """As SkinBank.generate, sharing a batch with other requests that arrive meanwhile. `gone()`, polled
        while the request waits, says its client went away: its rows then stop, freeing the batch sooner."""
        self.bank.prepare(requests)  # bad input fails here, in the caller's thread
        job = _Job(requests, on_token, on_text)
        self._queue.put(job)
        while not job.done.wait(POLL):
            if gone is not None and not job.abandoned and gone():
                job.abandoned = True
        if job.error is not None:
            raise job.error
        return job.result

    def _gather(self) -> list[_Job]:
        jobs = [self._queue.get()]
        rows = len(jobs[0].requests)
        while rows < self.bank.batch_size:
            try:
                job = self._queue.get(timeout=self.window)
            except queue.Empty:
                break
            jobs.append(job)
            rows += len(job.requests)
        return jobs

    def _loop(self) -> None:
        while True:
            jobs = self._gather()
            if not self._run(jobs):  # failed before any token: one by one, so each gets its own error
                for job in jobs:
                    self._run([job], alone=True)

    def _run(self, jobs: list[_Job], alone: bool = False) -> bool:
        """Runs `jobs` as one batch; False when it failed before any token, with the jobs still waiting (unless
        `alone`: then the error is the job's)."""
        owner = [(j, r) for j in jobs for r in range(len(j.requests))]
        emitted = False

        def on_token(row: int, token: int) -> bool | None:
            nonlocal emitted
            emitted = True
            job, local = owner[row]
            if job.abandoned:
                return False
            return None if job.on_token is None else job.on_token(local, token)

        def on_text(row: int, piece: str) -> None:
            job, local = owner[row]
            if job.on_text is not None:
                job.on_text(local, piece)

        try:
            self.batches += 1
            out = self.bank.generate([r for j in jobs for r in j.requests], on_token=on_token,
                                     on_text=on_text if any(j.on_text for j in jobs) else None)
        except BaseException as e:  # noqa: BLE001 - handed to the requests' threads
            if not (alone or emitted) and len(jobs) > 1:
                return False
            for job in jobs:
                job.error = e
                job.done.set()
            return True
        start = 0
        for job in jobs:
            job.result, start = out[start : start + len(job.requests)], start + len(job.requests)
            job.done.set()
        return True
