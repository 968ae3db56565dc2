"""One ComfyUI server as the gateway sees it (client, event hub, breaker) and the pool of them."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp

from .breaker import BreakerState, CircuitBreaker
from .capabilities import Capabilities, Vram
from .client import ComfyClient
from .events import EventHub
from .models import ClientLimits, ClientTimeouts

RECENT_PROMPTS = 5


class Instance:
    def __init__(self, name: str, client: ComfyClient, hub: EventHub, breaker: CircuitBreaker) -> None:
        self.name = name
        self.client = client
        self.hub = hub
        self.breaker = breaker
        self.healthy: bool | None = None  # None until the first probe
        self.last_check_at: float | None = None
        self.last_error: str | None = None
        self.last_response_ms: float | None = None
        self.capabilities: Capabilities | None = None  # None until /object_info was read: runs anything
        self.vram: Vram | None = None
        # The models of the prompts last sent here, newest last: the last one's are warm when the
        # next prompt runs (ComfyUI's default cache keeps the previous prompt's loaded nodes).
        self.recent_models: deque[frozenset[str]] = deque(maxlen=RECENT_PROMPTS)

    def record_probe(self, ok: bool, error: str | None = None, elapsed_ms: float | None = None) -> None:
        """A health probe's outcome. Its success only says the server answers, so it does not wipe
        out the failures of real jobs (see `CircuitBreaker.record_probe_success`)."""
        self.healthy = ok
        self.last_check_at = time.time()
        self.last_error = None if ok else error
        self.last_response_ms = elapsed_ms
        if ok:
            self.breaker.record_probe_success()
        else:
            self.breaker.record_failure(error, probe=True)

    def prompt_sent(self, models: frozenset[str]) -> None:
        self.recent_models.append(models)

    @property
    def warm_models(self) -> frozenset[str]:
        return self.recent_models[-1] if self.recent_models else frozenset()

    @property
    def available(self) -> bool:
        return self.breaker.allows_requests()

    @property
    def is_healthy(self) -> bool:
        """Answering probes (or not probed yet) and not shut out by its breaker."""
        return self.healthy is not False and self.available

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.client.base_url,
            "healthy": self.is_healthy,
            "last_probe_ok": self.healthy,
            "circuit_breaker": self.breaker.snapshot(),
            "last_check_at": self.last_check_at,
            "last_response_ms": self.last_response_ms,
            "last_error": self.last_error,
        }


class InstancePool:
    """Owns every Instance and its event hub; an async context manager built by the Gateway."""

    def __init__(
        self,
        hosts: tuple[str, ...],
        *,
        base_url: Callable[[str], str],
        session: aiohttp.ClientSession,
        max_connections: int,
        on_breaker_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
        on_reconnect: Callable[[str], None] | None = None,
        timeouts: ClientTimeouts | None = None,
        limits: ClientLimits | None = None,
    ) -> None:
        self._instances: dict[str, Instance] = {}
        self._stack = contextlib.AsyncExitStack()
        for host in hosts:
            client = ComfyClient(base_url(host), session, timeouts=timeouts, limits=limits)
            hub = EventHub(client, session, max_connections=max_connections, on_reconnect=on_reconnect)
            breaker = CircuitBreaker(on_change=self._breaker_callback(host, on_breaker_change))
            self._instances[host] = Instance(host, client, hub, breaker)

    @staticmethod
    def _breaker_callback(
        host: str, callback: Callable[[str, BreakerState, BreakerState], None] | None
    ) -> Callable[[BreakerState, BreakerState], None] | None:
        if callback is None:
            return None
        return lambda old, new: callback(host, old, new)

    async def __aenter__(self) -> InstancePool:
        for instance in self._instances.values():
            await self._stack.enter_async_context(instance.hub)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def __iter__(self) -> Iterator[Instance]:
        return iter(self._instances.values())

    def __len__(self) -> int:
        return len(self._instances)

    def get(self, name: str) -> Instance | None:
        return self._instances.get(name)

    def available(self) -> list[str]:
        return [i.name for i in self._instances.values() if i.available]

    def healthy_count(self) -> int:
        return sum(1 for i in self._instances.values() if i.is_healthy)
