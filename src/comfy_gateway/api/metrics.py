"""The seed's metrics API (JSON, persisted) and Prometheus text at /metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from ..errors import NotFound
from ..gateway import Gateway
from .deps import get_gateway
from .models import ErrorBody, MetricsBody, MetricsSavedBody

router = APIRouter(tags=["metrics"])
GW = Annotated[Gateway, Depends(get_gateway)]


@router.get("/api/metrics", response_model=MetricsBody, response_model_exclude_none=True)
async def all_metrics(gateway: GW) -> dict[str, Any]:
    return await gateway.metrics_summary()


@router.get("/api/metrics/performance")
async def performance(gateway: GW) -> dict[str, Any]:
    return gateway.metrics.performance()


@router.get("/api/metrics/errors")
async def errors(gateway: GW) -> dict[str, Any]:
    return gateway.metrics.errors()


@router.get("/api/metrics/instances")
async def instances(gateway: GW) -> dict[str, Any]:
    views = await gateway.instance_views(gateway.metrics.instances())
    return {"instances": views, "count": len(views)}


@router.get("/api/metrics/instances/{instance}", responses={404: {"model": ErrorBody}})
async def one_instance(instance: str, gateway: GW) -> dict[str, Any]:
    views = await gateway.instance_views(gateway.metrics.instances())
    if instance not in views:
        raise NotFound(f"unknown instance {instance!r}", known=sorted(views))
    return views[instance]


@router.post("/api/metrics/save", responses={200: {"model": MetricsSavedBody}, 500: {"model": ErrorBody}})
async def save(gateway: GW) -> JSONResponse:
    try:
        await gateway.metrics.asave()  # fsync off the event loop
    except OSError as exc:  # already logged and shown by the persistence status
        return JSONResponse({"error": f"metrics could not be saved: {exc}", "code": "metrics_save_failed",
                             "persistence": gateway.metrics.persistence_status()}, status_code=500)
    return JSONResponse({"message": "metrics saved", "persistence": gateway.metrics.persistence_status()})


@router.get("/api/metrics/persistence")
async def persistence(gateway: GW) -> dict[str, Any]:
    return gateway.metrics.persistence_status()


@router.get("/metrics", include_in_schema=False)
async def prometheus(gateway: GW) -> Response:
    await gateway.refresh_gauges()
    body, content_type = gateway.prom.render()
    return Response(body, media_type=content_type)
