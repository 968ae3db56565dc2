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
            self._mark(instance, False, str(exc) or type(exc).__name__)
        else:
            self._mark(instance, True, elapsed_ms=(time.perf_counter() - started) * 1000)
        if self._on_probe is not None:
            self._on_probe(instance)
        return bool(instance.healthy)

    @staticmethod
    def _mark(instance: Instance, ok: bool, error: str | None = None, elapsed_ms: float | None = None) -> None:
        """Record a probe. Its success only says the server answers, so it does not wipe out the
        failures of real jobs (see `CircuitBreaker.record_probe_success`)."""
        instance.healthy = ok
        instance.last_check_at = time.time()
        instance.last_error = None if ok else error
        instance.last_response_ms = elapsed_ms
        if ok:
            instance.breaker.record_probe_success()
        else:
            instance.breaker.record_failure(error, probe=True)

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
