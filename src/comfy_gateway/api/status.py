"""Health and status for load balancers and dashboards: 200 when healthy, 503 when degraded or critical."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..gateway import Gateway
from ..observability.timestamps import iso
from .deps import get_gateway
from .models import BasicMetricsBody, HealthBody, QuickStatusBody

router = APIRouter(tags=["health"])
GW = Annotated[Gateway, Depends(get_gateway)]


def overall_status(gateway: Gateway) -> tuple[str, int]:
    """healthy: every server healthy; degraded: some; critical: none, or the gateway is draining."""
    total = len(gateway.pool)
    healthy = gateway.pool.healthy_count()
    if not gateway.admitting or healthy == 0:
        return "critical", healthy
    return ("healthy" if healthy == total else "degraded"), healthy


def _code(status: str) -> int:
    return 200 if status == "healthy" else 503


@router.get("/health", responses={200: {"model": HealthBody}, 503: {"model": HealthBody}})
async def health(gateway: GW) -> JSONResponse:
    status, healthy = overall_status(gateway)
    usage = await gateway.slots.usage()
    basic = gateway.metrics.basic()
    uptime_s = time.time() - gateway.started_at
    body: dict[str, Any] = {
        "status": status,
        "timestamp": iso(time.time()),
        "uptime": {"total_uptime_hours": round(uptime_s / 3600, 4), "total_uptime_seconds": round(uptime_s, 1),
                   "started_at": iso(gateway.started_at)},
        "comfyui_instances": {
            "total": len(gateway.pool),
            "healthy": healthy,
            "instances": [dict(i.snapshot(), active_jobs=usage.get(i.name, 0)) for i in gateway.pool],
        },
        "job_processing": {
            "processor_running": not gateway.dispatcher.draining,
            "active_jobs": sum(usage.values()),
            "pending_jobs": await gateway.store.pending_count(),
            "admitting": gateway.admitting,
        },
        "performance": {
            "total_jobs_processed": basic["jobs"]["total_processed"],
            "success_rate": basic["jobs"]["success_rate"],
        },
    }
    return JSONResponse(body, status_code=_code(status))


@router.get("/status", responses={200: {"model": QuickStatusBody}, 503: {"model": QuickStatusBody}})
async def quick_status(gateway: GW) -> JSONResponse:
    status, healthy = overall_status(gateway)
    usage = await gateway.slots.usage()
    return JSONResponse({"status": status, "healthy_instances": healthy, "active_jobs": sum(usage.values()),
                         "uptime_hours": round((time.time() - gateway.started_at) / 3600, 4)},
                        status_code=_code(status))


@router.get("/status/metrics", response_model=BasicMetricsBody)
async def status_metrics(gateway: GW) -> dict[str, Any]:
    return gateway.metrics.basic()
