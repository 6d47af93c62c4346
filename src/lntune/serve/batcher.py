"""Requests that arrive together run together, whatever skins they name.

RowBatcher (/predict): each request is checked and tokenised in its own thread (SkinBank.prepare_rows), then its
rows wait in a queue that one worker thread empties pass by pass; each pass takes one row from every waiting
request in turn (SkinBank's next_pass, bounded in inputs and padded tokens), so concurrent requests share passes
and a small request beside a large one waits one short pass, not the large one's whole run.

Batcher (/v1 generation): concurrent requests are merged into one mixed batch.

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

from lntune.errors import LntuneError
from lntune.serve.bank import Rows, SkinBank, next_pass
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


class RowBatcher:
    """SkinBank.predict for concurrent callers: their rows share forward passes, taken round-robin."""

    def __init__(self, bank: SkinBank) -> None:
        self.bank = bank
        self.passes = 0  # forward passes run: fewer than requests when they were merged
        self._calls: list[Rows] = []
        self._done: dict[int, threading.Event] = {}
        self._ready = threading.Condition()
        threading.Thread(target=self._loop, daemon=True, name="lntune-predict").start()

    def predict(self, inputs: list[tuple[str, object]]) -> list[dict]:
        """As SkinBank.predict; bad input fails here, in the caller's thread, before it waits."""
        call = self.bank.prepare_rows(inputs)
        done = threading.Event()
        with self._ready:
            self._calls.append(call)
            self._done[id(call)] = done
            self._ready.notify()
        done.wait()
        if call.error is not None:
            raise call.error
        return call.out

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._calls:
                    self._ready.wait()
                picks = next_pass(self._calls, self.bank.batch_size, self.bank.batch_tokens)
                self._calls.append(self._calls.pop(0))  # the next pass starts with the next call
            self._run(picks)
            with self._ready:
                for call in [c for c in self._calls if c.error is not None or not c.todo]:
                    self._calls.remove(call)
                    self._done.pop(id(call)).set()

    def _run(self, picks: list[tuple[Rows, int]]) -> None:
        """One pass; if it cannot run (a skin removed since its call was checked), each call's rows run apart,
        so the error reaches only the calls it belongs to."""
        self.passes += 1
        calls = list({id(c): c for c, _ in picks}.values())
        try:
            self.bank.forward_rows(picks)
            return
        except LntuneError as e:
            if len(calls) == 1:
                calls[0].error = e
                return
        except Exception as e:  # noqa: BLE001 - a bug: raised in every caller's thread (a 500), never swallowed
            for call in calls:
                call.error = e
            return
        for call in calls:
            self._run([(c, i) for c, i in picks if c is call])
