"""Health and status for load balancers and dashboards: 200 when healthy, 503 when degraded or critical."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..observability.timestamps import iso
from .deps import Ops
from .models import BasicMetricsBody, HealthBody, QuickStatusBody

router = APIRouter(tags=["health"])


def _code(status: str) -> int:
    return 200 if status == "healthy" else 503


@router.get("/health", responses={200: {"model": HealthBody}, 503: {"model": HealthBody}})
async def health(ops: Ops) -> JSONResponse:
    status, healthy = ops.overall_status()
    problem = ops.storage_problem()
    snaps = await ops.instances()
    basic = ops.metrics.basic()
    uptime_s = time.time() - ops.started_at
    body: dict[str, Any] = {
        "status": status,
        "timestamp": iso(time.time()),
        "uptime": {"total_uptime_hours": round(uptime_s / 3600, 4), "total_uptime_seconds": round(uptime_s, 1),
                   "started_at": iso(ops.started_at)},
        "comfyui_instances": {
            "total": ops.instance_count,
            "healthy": healthy,
            "instances": [dict(snap.detail, active_jobs=snap.active_jobs) for snap in snaps],
        },
        "job_processing": {
            "processor_running": ops.processor_running,
            "active_jobs": sum(snap.active_jobs for snap in snaps),
            "pending_jobs": await ops.pending_count(),
            "admitting": ops.admitting,
        },
        "performance": {
            "total_jobs_processed": basic["jobs"]["total_processed"],
            "success_rate": basic["jobs"]["success_rate"],
        },
        "storage": {"ok": problem is None, **(problem or {})},
    }
    return JSONResponse(body, status_code=_code(status))


@router.get("/status", responses={200: {"model": QuickStatusBody}, 503: {"model": QuickStatusBody}})
async def quick_status(ops: Ops) -> JSONResponse:
    status, healthy = ops.overall_status()
    active = sum(snap.active_jobs for snap in await ops.instances())
    return JSONResponse({"status": status, "healthy_instances": healthy, "active_jobs": active,
                         "uptime_hours": round((time.time() - ops.started_at) / 3600, 4)},
                        status_code=_code(status))


@router.get("/status/metrics", response_model=BasicMetricsBody)
async def status_metrics(ops: Ops) -> dict[str, Any]:
    return ops.metrics.basic()
