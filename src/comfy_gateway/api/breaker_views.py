"""The circuit breakers as the original middleware showed them (SEED-API.md §10).

The gateway has one breaker per server; the original had two, `health-check-instance-<n>` and
`workflow-<host:port>`. Both of the original's names are shown and accepted, and lead to that one breaker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ..comfyui.breaker import BreakerState, CircuitBreaker
from ..comfyui.instance import Instance
from ..observability.formats import epoch_ms, pct2
from ..observability.timestamps import iso
from .metrics_views import instance_id


def seed_names(pool: Iterable[Instance]) -> dict[str, Instance]:
    """The original's breaker names, each with the server whose breaker it names."""
    names: dict[str, Instance] = {}
    for position, instance in enumerate(pool, start=1):
        names[f"health-check-{instance_id(position)}"] = instance
        names[f"workflow-{instance.name}"] = instance
    return names


def find(pool: Iterable[Instance], name: str) -> Instance | None:
    """A server by its own name (host:port) or by one of the original's breaker names."""
    members = list(pool)
    return next((i for i in members if i.name == name), None) or seed_names(members).get(name)


def state(breaker: CircuitBreaker) -> str:
    return breaker.state.value.upper()  # CLOSED, OPEN, HALF_OPEN


def window(breaker: CircuitBreaker) -> dict[str, Any]:
    requests, failed = breaker.window.counts()
    return {"totalRequests": requests, "errorCount": failed, "errorRate": pct2(failed, requests)}


def brief(breaker: CircuitBreaker) -> dict[str, Any]:
    """The breaker inside /health's instance entries."""
    return {"state": state(breaker), "failures": breaker.failures, "error_rate": window(breaker)["errorRate"]}


def _next_attempt(breaker: CircuitBreaker) -> float | None:
    return time.time() + breaker.retry_in if breaker.state is BreakerState.OPEN else None


def listed(breaker: CircuitBreaker) -> dict[str, Any]:
    """An entry of GET /api/circuit-breakers (`nextAttempt` ISO, as the original's GET)."""
    next_attempt = _next_attempt(breaker)
    return {"state": state(breaker), "failures": breaker.failures, "successes": breaker.successes,
            "metrics": window(breaker), "nextAttempt": None if next_attempt is None else iso(next_attempt),
            "resetTimeout": round(breaker.reset_timeout_s * 1000)}


def new_status(name: str, breaker: CircuitBreaker) -> dict[str, Any]:
    """`newStatus` of the open and close answers (`nextAttempt` in epoch ms there, as the original)."""
    return {"name": name, "state": state(breaker), "failures": breaker.failures, "successes": breaker.successes,
            "nextAttempt": epoch_ms(_next_attempt(breaker)),
            "currentResetTimeout": round(breaker.reset_timeout_s * 1000), "metrics": window(breaker)}


def all_breakers(pool: Iterable[Instance]) -> dict[str, Any]:
    members = list(pool)
    return {"timestamp": iso(time.time()),
            "breakers": {name: listed(i.breaker) for name, i in seed_names(members).items()},
            "circuit_breakers": {i.name: i.breaker.snapshot() for i in members}}


def changed(name: str, instance: Instance, action: str) -> dict[str, Any]:
    """The answer to a forced open or close; `action` is "opened" or "closed"."""
    return {"message": f"Circuit breaker {action} successfully", "name": name,
            "newStatus": new_status(name, instance.breaker), "circuit_breaker": instance.breaker.snapshot()}
