"""Quotas: the queue bounds and the keys' rate limits, answered 429 with an honest Retry-After.

The wait is estimated from the throughput the store measured over the last minute (jobs that
finished, on every replica): how long until enough of the queue has drained to make room.
"""

from __future__ import annotations

import math
import time

from ..errors import QueueFull, RateLimited
from ..jobs.store import JobStore
from .principal import Principal
from .ratelimit import RateLimiter

THROUGHPUT_WINDOW_S = 60.0
UNKNOWN_RETRY_AFTER_S = 5  # nothing finished lately: nothing to estimate from


class Quotas:
    def __init__(self, store: JobStore, limiter: RateLimiter, *, max_queue_depth: int) -> None:
        self._store = store
        self._limiter = limiter
        self._max_queue_depth = max_queue_depth

    async def check_rate(self, principal: Principal) -> None:
        """One request of `principal`, against its requests_per_minute."""
        per_minute = principal.requests_per_minute
        if per_minute is None:
            return
        wait = await self._limiter.take(principal.name, per_minute)
        if wait > 0:
            raise RateLimited(f"key {principal.name!r} is over its {per_minute} requests per minute",
                              retry_after=max(1, math.ceil(wait)), eta_seconds=round(wait, 1), limit=per_minute)

    async def check_queue(self, principal: Principal) -> None:
        """Room for one more job of `principal`: in the gateway's queue and in its own."""
        if self._max_queue_depth:
            pending = await self._store.pending_count()
            if pending >= self._max_queue_depth:
                await self._refuse("the gateway's queue is full", "gateway",
                                   pending - self._max_queue_depth + 1, self._max_queue_depth)
        cap = principal.max_queued_jobs
        if cap is not None:
            pending = await self._store.pending_count(principal.name)
            if pending >= cap:
                await self._refuse(f"key {principal.name!r} has {pending} jobs queued, its limit",
                                   "key", pending - cap + 1, cap)

    async def throughput(self) -> float | None:
        """Jobs per second finished over the last minute, or None if none did."""
        now = time.time()
        count, first = await self._store.finished_since(now - THROUGHPUT_WINDOW_S)
        if not count or first is None:
            return None
        return count / max(1.0, now - first)

    async def _refuse(self, message: str, queue: str, to_drain: int, limit: int) -> None:
        rate = await self.throughput()
        eta = None if rate is None else round(to_drain / rate, 1)
        retry_after = UNKNOWN_RETRY_AFTER_S if eta is None else max(1, math.ceil(eta))
        raise QueueFull(f"{message}; retry later", retry_after=retry_after, queue=queue, eta_seconds=eta, limit=limit)
