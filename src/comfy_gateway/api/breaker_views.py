"""The circuit breakers as the original middleware showed them (SEED-API.md §10).

The gateway has one breaker per server; the original had two, `health-check-instance-<n>` and
`workflow-<host:port>`. Both of the original's names are shown and accepted, and lead to that one breaker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..comfyui.breaker import BreakerFigures, BreakerState
from ..observability.formats import epoch_ms, pct2
from ..observability.timestamps import iso
from .metrics_views import instance_id


def seed_names(servers: Sequence[str]) -> dict[str, str]:
    """The original's breaker names, each with the server (host:port) whose breaker it names."""
    names: dict[str, str] = {}
    for position, server in enumerate(servers, start=1):
        names[f"health-check-{instance_id(position)}"] = server
        names[f"workflow-{server}"] = server
    return names


def server_named(servers: Sequence[str], name: str) -> str | None:
    """The server a breaker name points at: its own name (host:port) or one of the original's names."""
    return name if name in servers else seed_names(servers).get(name)


def state(figures: BreakerFigures) -> str:
    return figures.state.value.upper()  # CLOSED, OPEN, HALF_OPEN


def window(figures: BreakerFigures) -> dict[str, Any]:
    return {"totalRequests": figures.requests, "errorCount": figures.errors,
            "errorRate": pct2(figures.errors, figures.requests)}


def brief(figures: BreakerFigures) -> dict[str, Any]:
    """The breaker inside /health's instance entries."""
    return {"state": state(figures), "failures": figures.failures, "error_rate": window(figures)["errorRate"]}


def _next_attempt(figures: BreakerFigures) -> float | None:
    return time.time() + figures.retry_in_s if figures.state is BreakerState.OPEN else None


def listed(figures: BreakerFigures) -> dict[str, Any]:
    """An entry of GET /api/circuit-breakers (`nextAttempt` ISO, as the original's GET)."""
    next_attempt = _next_attempt(figures)
    return {"state": state(figures), "failures": figures.failures, "successes": figures.successes,
            "metrics": window(figures), "nextAttempt": None if next_attempt is None else iso(next_attempt),
            "resetTimeout": round(figures.reset_timeout_s * 1000)}


def new_status(name: str, figures: BreakerFigures) -> dict[str, Any]:
    """`newStatus` of the open and close answers (`nextAttempt` in epoch ms there, as the original)."""
    return {"name": name, "state": state(figures), "failures": figures.failures, "successes": figures.successes,
            "nextAttempt": epoch_ms(_next_attempt(figures)),
            "currentResetTimeout": round(figures.reset_timeout_s * 1000), "metrics": window(figures)}


def all_breakers(figures: dict[str, BreakerFigures], ours: dict[str, Any]) -> dict[str, Any]:
    """GET /api/circuit-breakers: the original's names first, then the gateway's view by server."""
    return {"timestamp": iso(time.time()),
            "breakers": {name: listed(figures[server]) for name, server in seed_names(list(figures)).items()},
            "circuit_breakers": ours}


def changed(name: str, figures: BreakerFigures, ours: dict[str, Any], action: str) -> dict[str, Any]:
    """The answer to a forced open or close; `action` is "opened" or "closed"."""
    return {"message": f"Circuit breaker {action} successfully", "name": name,
            "newStatus": new_status(name, figures), "circuit_breaker": ours}
