"""Notifications between the parts of the gateway (and, with Redis, between its replicas).

- job finished: a sync request waits on its job without polling;
- work available: a job was queued or a slot freed, so dispatchers wake up;
- breaker opened: a server one replica found dead is avoided by all.

`LocalJobEvents` serves one process, where the last two need no message at all. The Redis
variant (`scaleout/bus.py`) carries all three over pub/sub.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

WorkHandler = Callable[[], None]
BreakerHandler = Callable[[str, float], None]  # (instance, seconds it stays open)


class JobEvents(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def publish_finished(self, job_id: str) -> None: ...

    def subscribe(self, job_id: str) -> asyncio.Event:
        """An event set when `job_id` finishes; pair with `unsubscribe`."""

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None: ...

    async def announce_work(self) -> None:
        """Tell other replicas' dispatchers to look for work (a new job, a freed slot)."""

    async def announce_breaker_open(self, instance: str, seconds: float) -> None: ...

    def on_work(self, handler: WorkHandler) -> None: ...

    def on_breaker_open(self, handler: BreakerHandler) -> None: ...


class LocalJobEvents:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()
        self._waiters.clear()

    def deliver(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    async def publish_finished(self, job_id: str) -> None:
        self.deliver(job_id)

    def subscribe(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        return event

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None:
        events = self._waiters.get(job_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiters[job_id]

    # One process: its own dispatcher is woken directly, and there is nobody else to tell.
    async def announce_work(self) -> None:
        return None

    async def announce_breaker_open(self, instance: str, seconds: float) -> None:
        return None

    def on_work(self, handler: WorkHandler) -> None:
        return None

    def on_breaker_open(self, handler: BreakerHandler) -> None:
        return None
