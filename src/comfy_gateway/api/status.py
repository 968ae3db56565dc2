"""Health and status for load balancers and dashboards, in the original's shapes (SEED-API.md §8).

/health answers 503 when degraded or critical (as the original promised; its code always sent 200);
/status and /status/metrics always answer 200, as the original's did."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..overview import Overview
from . import health_views
from .deps import Ops, Service
from .health_models import BasicMetricsBody, HealthBody, QuickStatusBody

router = APIRouter(tags=["health"])


async def snapshot(ops: Overview, max_concurrent_jobs: int, *, cluster: bool = False) -> health_views.Snapshot:
    """`cluster`: the figures of every replica (a Redis round trip), else this one's (cheap, for probes)."""
    reading = await ops.reading() if cluster else ops.metrics.reading()
    pool = tuple(await ops.instances())  # first: a store fault it meets is then in storage_problem
    return health_views.Snapshot(reading=reading, pool=pool, processor_running=ops.processor_running,
                                 admitting=ops.admitting, max_concurrent_jobs=max_concurrent_jobs,
                                 storage_problem=ops.storage_problem())


@router.get("/health", responses={200: {"model": HealthBody}, 503: {"model": HealthBody}})
async def health(ops: Ops, service: Service) -> JSONResponse:
    counts = await ops.job_counts()
    snap = await snapshot(ops, service.settings.max_concurrent_jobs)
    body = health_views.health(snap, counts)
    return JSONResponse(body, status_code=200 if body["status"] == "healthy" else 503)


@router.get("/status", response_model=QuickStatusBody)
async def quick_status(ops: Ops, service: Service) -> JSONResponse:
    return JSONResponse(health_views.quick_status(await snapshot(ops, service.settings.max_concurrent_jobs)))


@router.get("/status/metrics", response_model=BasicMetricsBody)
async def status_metrics(ops: Ops, service: Service) -> JSONResponse:
    snap = await snapshot(ops, service.settings.max_concurrent_jobs, cluster=True)
    return JSONResponse(health_views.basic_metrics(snap))
