"""The last minutes in short buckets, kept in memory for the dashboard's live charts.

Each bucket counts the jobs this replica finished in it and their latency (submit to finish, the
wait a client sees), and holds the deepest queue and the most jobs running that the sampler saw
while it was current. Older buckets fall off the ring; nothing is persisted.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..jobs.model import Job
from .job_counts import percentile
from .timestamps import iso

SPAN_S = 15 * 60.0
STEP_S = 10.0
SAMPLES_PER_STEP = 5
LATENCIES_PER_BUCKET = 2000  # enough for a p95 at well over 100 jobs/s; beyond it the first ones stand for all

QueueReader = Callable[[], Awaitable[tuple[int, int]]]  # (jobs pending, jobs running)


@dataclass
class Bucket:
    start: float
    finished: int = 0
    failed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    pending: int | None = None
    running: int | None = None

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {"at": iso(self.start), "finished": self.finished, "failed": self.failed,
                "p95_latency_ms": percentile(ordered, 95) if ordered else None,
                "pending": self.pending, "running": self.running}


class Timeline:
    def __init__(self, *, span_s: float = SPAN_S, step_s: float = STEP_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.span_s = span_s
        self.step_s = step_s
        self._clock = clock
        self._buckets: deque[Bucket] = deque(maxlen=max(1, round(span_s / step_s)))

    def _current(self) -> Bucket:
        start = self._clock() // self.step_s * self.step_s
        if not self._buckets or self._buckets[-1].start < start:
            self._buckets.append(Bucket(start))
        return self._buckets[-1]

    def job_finished(self, job: Job, ok: bool) -> None:
        """A Telemetry listener: one more job finished now."""
        bucket = self._current()
        bucket.finished += 1
        if not ok:
            bucket.failed += 1
        elif len(bucket.latencies_ms) < LATENCIES_PER_BUCKET:
            end = job.finished_at if job.finished_at is not None else self._clock()
            bucket.latencies_ms.append(max(0.0, end - job.created_at) * 1000)

    def sample(self, pending: int, running: int) -> None:
        bucket = self._current()
        bucket.pending = max(pending, bucket.pending or 0)
        bucket.running = max(running, bucket.running or 0)

    async def run(self, read: QueueReader) -> None:
        """Sample the queue a few times per bucket, until cancelled."""
        while True:
            self.sample(*await read())
            await asyncio.sleep(self.step_s / SAMPLES_PER_STEP)

    def snapshot(self) -> dict[str, Any]:
        """The buckets of the last span, oldest first (a quiet stretch has no bucket)."""
        self._current()
        since = self._clock() - self.span_s
        return {"span_seconds": self.span_s, "step_seconds": self.step_s,
                "points": [b.as_dict() for b in self._buckets if b.start + self.step_s > since]}
