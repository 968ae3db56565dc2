"""Notifications between the parts of the gateway (and, with Redis, between its replicas).

- job finished: a sync request waits on its job without polling;
- job changed (started, progress, back in the queue): a live status stream re-reads the job only then;
- work available: a job was queued or a slot freed, so dispatchers wake up;
- breaker opened: a server one replica found dead is avoided by all.

`LocalJobEvents` serves one process, where the last two need no message at all. The Redis
variant (`scaleout/bus.py`) carries them all over pub/sub.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Protocol

from .model import Job

WorkHandler = Callable[[], None]
BreakerHandler = Callable[[str, float], None]  # (instance, seconds it stays open)


class JobEvents(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def publish_finished(self, job_id: str, job: Job | None = None) -> None:
        """`job`: the job as stored when it finished, kept for this process's waiters (`finished_job`)."""

    async def publish_changed(self, job_id: str) -> None:
        """The job's state or progress changed, and it has not finished."""

    def subscribe(self, job_id: str, *, changes: bool = False) -> asyncio.Event:
        """An event set when `job_id` finishes (with `changes`, also at every change); pair with
        `unsubscribe`. The subscriber clears it before it reads the job."""

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None: ...

    def finished_lately(self, job_id: str) -> bool:
        """Whether a finish of `job_id` was heard here lately (of the last FINISHES_KEPT), so that
        a subscriber that came a moment too late knows to read the job."""

    def subscribers(self, job_id: str) -> int:
        """How many subscriptions wait on `job_id` here."""

    def finished_job(self, job_id: str) -> Job | None:
        """The job as stored when it finished here, while something here still waits on it; None
        when it finished elsewhere, or changed since (a deletion), so the waiter reads it."""

    async def announce_work(self) -> None:
        """Tell other replicas' dispatchers to look for work (a new job, a freed slot)."""

    async def announce_breaker_open(self, instance: str, seconds: float) -> None: ...

    def on_work(self, handler: WorkHandler) -> None: ...

    def on_breaker_open(self, handler: BreakerHandler) -> None: ...


FINISHES_KEPT = 4096


class LocalJobEvents:
    def __init__(self) -> None:
        self._finish_waiters: dict[str, set[asyncio.Event]] = defaultdict(set)  # woken when the job ends
        self._change_waiters: dict[str, set[asyncio.Event]] = defaultdict(set)  # woken at every change
        self._finishes_heard: OrderedDict[str, None] = OrderedDict()
        self._finished_jobs: dict[str, Job] = {}  # only while the job has subscribers here

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        for waiters in (self._finish_waiters, self._change_waiters):
            for events in waiters.values():
                for event in events:
                    event.set()
            waiters.clear()

    def deliver(self, job_id: str, *, finished: bool = True, job: Job | None = None) -> None:
        targets = list(self._change_waiters.get(job_id, ()))
        if job is not None and self.subscribers(job_id):
            self._finished_jobs[job_id] = job
        else:
            self._finished_jobs.pop(job_id, None)  # it changed after that: a waiter reads it
        if finished:
            targets += self._finish_waiters.get(job_id, ())
            self._finishes_heard[job_id] = None
            if len(self._finishes_heard) > FINISHES_KEPT:
                self._finishes_heard.popitem(last=False)
        for event in targets:
            event.set()

    async def publish_finished(self, job_id: str, job: Job | None = None) -> None:
        self.deliver(job_id, job=job)

    async def publish_changed(self, job_id: str) -> None:
        self.deliver(job_id, finished=False)

    def subscribe(self, job_id: str, *, changes: bool = False) -> asyncio.Event:
        event = asyncio.Event()
        (self._change_waiters if changes else self._finish_waiters)[job_id].add(event)
        return event

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None:
        for waiters in (self._finish_waiters, self._change_waiters):
            events = waiters.get(job_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del waiters[job_id]
        if not self.subscribers(job_id):
            self._finished_jobs.pop(job_id, None)

    def finished_lately(self, job_id: str) -> bool:
        return job_id in self._finishes_heard

    def subscribers(self, job_id: str) -> int:
        return len(self._finish_waiters.get(job_id, ())) + len(self._change_waiters.get(job_id, ()))

    def finished_job(self, job_id: str) -> Job | None:
        return self._finished_jobs.get(job_id)

    # One process: its own dispatcher is woken directly, and there is nobody else to tell.
    async def announce_work(self) -> None:
        return None

    async def announce_breaker_open(self, instance: str, seconds: float) -> None:
        return None

    def on_work(self, handler: WorkHandler) -> None:
        return None

    def on_breaker_open(self, handler: BreakerHandler) -> None:
        return None
