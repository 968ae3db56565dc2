"""A cluster view of the metrics: every replica shares its counters in Redis; reads sum them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any

from redis.asyncio import Redis

from ..observability.job_counts import jobs_per_hour, merge_counts
from ..observability.job_metrics import RECENT_ERRORS, JobMetrics, MetricsReading


class ClusterMetrics:
    def __init__(
        self, client: Redis, prefix: str, metrics: JobMetrics, replica: str, *, interval_s: float
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._key_prefix = f"{prefix}:metrics:"
        self._key = f"{self._key_prefix}{replica}"
        self._interval_s = interval_s
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """A job finished here: share the new figures soon (batched, not once per job)."""
        self._changed.set()

    async def publish(self) -> None:
        state = json.dumps(self._metrics.export_state())
        await self._client.set(self._key, state, ex=max(5, int(self._interval_s * 3)))

    async def _states(self) -> list[dict[str, Any]]:
        """Every live replica's figures (this one's are published first)."""
        await self.publish()
        keys = [k async for k in self._client.scan_iter(match=f"{self._key_prefix}*", count=100)]
        return [json.loads(v) for v in await self._client.mget(keys) if v is not None] if keys else []

    async def merged(self) -> dict[str, Any]:
        """Totals over every live replica."""
        return JobMetrics.merge(await self._states())

    async def merged_reading(self) -> MetricsReading:
        """This replica's reading with the counters, samples and errors of the whole cluster."""
        local = self._metrics.reading()
        pooled = merge_counts(await self._states())
        return dataclasses.replace(
            local, counts=pooled.counts, processing_ms=tuple(pooled.processing_ms),
            recent_errors=tuple(pooled.recent_errors[-RECENT_ERRORS:]),
            jobs_per_hour=jobs_per_hour(pooled.counts.totals.total, pooled.counts.metrics_started_at, local.now))

    async def run(self) -> None:
        while True:
            await self.publish()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._changed.wait()
            self._changed.clear()
            await asyncio.sleep(0.2)  # gather the jobs that finish together into one write

    async def forget(self) -> None:
        await self._client.delete(self._key)
