"""The figures an autoscaler (KEDA, an HPA on external metrics) scales ComfyUI servers on.

Read from the store and the pool when Prometheus scrapes, like the other point-in-time gauges:
queue depth and demand (waiting + running) per workflow, the oldest waiting job's age, and the
pool's slots (healthy servers x MAX_JOBS_PER_INSTANCE, within MAX_CONCURRENT_JOBS), busy slots, and
the slots of each server (for its utilisation: jobs running there over its slots).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .comfyui.instance import InstancePool
from .jobs.store import JobStore
from .observability.prometheus import PromMetrics


class AutoscalingSignals:
    def __init__(self, *, store: JobStore, pool: InstancePool, prom: PromMetrics, workflows: Callable[[], list[str]],
                 per_instance: int, total: int) -> None:
        self._store = store
        self._pool = pool
        self._prom = prom
        self._workflows = workflows
        self._per_instance = per_instance
        self._total = total

    async def refresh(self, busy_slots: int) -> None:
        queue = await self._store.queue_stats()
        oldest = queue.oldest_pending_created_at
        self._prom.set_demand(queue.pending_by_type, queue.processing_by_type, self._workflows(),
                              None if oldest is None else time.time() - oldest)
        slots = min(self._total, self._pool.healthy_count() * self._per_instance)
        self._prom.set_pool_slots(slots, busy_slots, {inst.name: self._per_instance for inst in self._pool})
