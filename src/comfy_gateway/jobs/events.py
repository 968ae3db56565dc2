"""Job-finished notifications, so a sync request can wait on its job without polling.

`LocalJobEvents` serves one process. With several replicas the job may finish on another one;
the Redis variant publishes the same notification on a channel every replica listens to.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol


class JobEvents(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def publish_finished(self, job_id: str) -> None: ...

    def subscribe(self, job_id: str) -> asyncio.Event:
        """An event set when `job_id` finishes; pair with `unsubscribe`."""

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None: ...


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
