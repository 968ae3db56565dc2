"""Health and status for load balancers and dashboards, in the original's shapes (SEED-API.md §8).

/health answers 503 when degraded or critical (as the original promised; its code always sent 200);
/status and /status/metrics always answer 200, as the original's did."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ..gateway import Gateway
from . import health_views
from .deps import get_gateway
from .health_models import BasicMetricsBody, HealthBody, QuickStatusBody

router = APIRouter(tags=["health"])
GW = Annotated[Gateway, Depends(get_gateway)]


async def snapshot(gateway: Gateway) -> health_views.Snapshot:
    return health_views.Snapshot(
        reading=gateway.metrics.reading(), pool=tuple(gateway.pool), usage=dict(await gateway.slots.usage()),
        processor_running=not gateway.dispatcher.draining, admitting=gateway.admitting,
        max_concurrent_jobs=gateway.settings.max_concurrent_jobs)


@router.get("/health", responses={200: {"model": HealthBody}, 503: {"model": HealthBody}})
async def health(gateway: GW) -> JSONResponse:
    body = health_views.health(await snapshot(gateway), await gateway.store.counts())
    return JSONResponse(body, status_code=200 if body["status"] == "healthy" else 503)


@router.get("/status", response_model=QuickStatusBody)
async def quick_status(gateway: GW) -> JSONResponse:
    return JSONResponse(health_views.quick_status(await snapshot(gateway)))


@router.get("/status/metrics", response_model=BasicMetricsBody)
async def status_metrics(gateway: GW) -> JSONResponse:
    return JSONResponse(health_views.basic_metrics(await snapshot(gateway)))
