"""Health probes: GET /system_stats on every server, feeding each one's circuit breaker.

A good probe also reads the server's memory from the same answer, and its capabilities
(GET /object_info) when the server is first reached, when it recovers and every `capabilities_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..errors import UpstreamError
from .capabilities import parse_object_info, parse_vram
from .instance import Instance, InstancePool


class HealthChecker:
    def __init__(self, pool: InstancePool, *, interval_s: float, timeout_s: float,
                 on_probe: Callable[[Instance], None] | None = None, capabilities_s: float = 300.0,
                 on_capabilities: Callable[[Instance], None] | None = None) -> None:
        self.pool = pool
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.capabilities_s = capabilities_s
        self._on_probe = on_probe
        self._on_capabilities = on_capabilities
        self._kick = asyncio.Event()

    async def probe(self, instance: Instance) -> bool:
        started = time.perf_counter()
        was_healthy = instance.healthy
        try:
            async with asyncio.timeout(self.timeout_s):
                stats = await instance.client.system_stats()
        except (UpstreamError, TimeoutError) as exc:
            instance.record_probe(False, str(exc) or type(exc).__name__)
        else:
            instance.record_probe(True, elapsed_ms=(time.perf_counter() - started) * 1000)
            instance.vram = parse_vram(stats)
            instance.hub.warm()
            if was_healthy is False:  # back from an outage, maybe restarted: nothing is loaded any more
                instance.recent_models.clear()
            if was_healthy is False or self._capabilities_due(instance):
                await self.read_capabilities(instance)
        if self._on_probe is not None:
            self._on_probe(instance)
        return bool(instance.healthy)

    def _capabilities_due(self, instance: Instance) -> bool:
        known = instance.capabilities
        return known is None or time.time() - known.fetched_at >= self.capabilities_s

    async def read_capabilities(self, instance: Instance) -> None:
        """GET /object_info; when it fails the server keeps what was known (or counts as able to run anything)."""
        try:
            body = await instance.client.object_info()
        except (UpstreamError, TimeoutError):
            return
        instance.capabilities = parse_object_info(body)
        if self._on_capabilities is not None:
            self._on_capabilities(instance)

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
