"""Health probes: GET /system_stats on every server, feeding each one's circuit breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..errors import UpstreamError
from .instance import Instance, InstancePool


class HealthChecker:
    def __init__(self, pool: InstancePool, *, interval_s: float, timeout_s: float,
                 on_probe: Callable[[Instance], None] | None = None) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._on_probe = on_probe
        self._kick = asyncio.Event()

    async def probe(self, instance: Instance) -> bool:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                await instance.client.system_stats()
        except (UpstreamError, TimeoutError) as exc:
            instance.record_probe(False, str(exc) or type(exc).__name__)
        else:
            instance.record_probe(True, elapsed_ms=(time.perf_counter() - started) * 1000)
        if self._on_probe is not None:
            self._on_probe(instance)
        return bool(instance.healthy)

    async def check_all(self) -> None:
        await asyncio.gather(*(self.probe(i) for i in self.pool))

    def kick(self) -> None:
        """Probe again soon (a job just failed at a server)."""
        self._kick.set()

    async def run(self) -> None:
        while True:
            await self.check_all()
            # Wake early when an open breaker is due for its half-open try.
            waits = [i.breaker.retry_in for i in self.pool if i.breaker.retry_in > 0]
            delay = min([self.interval_s, *[w + 0.01 for w in waits]])
            self._kick.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._kick.wait()
            except TimeoutError:
                pass
