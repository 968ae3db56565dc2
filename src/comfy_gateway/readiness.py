"""Can this replica take work? The answer behind `/ready`, for load balancers and Kubernetes.

Ready when the job store answers and storage shows no current fault (a full disk, a replaced
database), at least one ComfyUI server is healthy, the queue is below MAX_QUEUE_DEPTH (0: unbounded)
and the gateway is not draining. Liveness (`/live`) asks none of this.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .comfyui.instance import InstancePool
from .jobs.store import JobStore

STORE_TIMEOUT_S = 2.0


@dataclass
class Readiness:
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.reasons

    def body(self) -> dict[str, Any]:
        return {"status": "ready" if self.ready else "not_ready", "reasons": self.reasons, "checks": self.checks}


async def check_readiness(store: JobStore, pool: InstancePool, *, admitting: bool, max_queue_depth: int,
                          storage_fault: str | None = None) -> Readiness:
    result = Readiness()
    result.checks["admitting"] = admitting
    if not admitting:
        result.reasons.append("the gateway is shutting down")
    healthy = pool.healthy_count()
    result.checks["servers"] = {"healthy": healthy, "total": len(pool)}
    if healthy == 0:
        result.reasons.append("no healthy ComfyUI server")
    try:
        async with asyncio.timeout(STORE_TIMEOUT_S):
            pending = await store.pending_count()
    except Exception as exc:  # any failure to answer means the store cannot take jobs
        result.checks["store"] = "unreachable"
        result.reasons.append(f"the job store does not answer ({type(exc).__name__})")
        return result
    result.checks["store"] = "ok" if storage_fault is None else "failing"
    if storage_fault is not None:
        result.reasons.append(storage_fault)
    result.checks["queue"] = {"pending": pending, "limit": max_queue_depth or None}
    if max_queue_depth and pending >= max_queue_depth:
        result.reasons.append(f"the queue is full ({pending} of {max_queue_depth} pending)")
    return result
