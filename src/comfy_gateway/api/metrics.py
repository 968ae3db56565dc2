"""The seed's metrics API (JSON, persisted) and Prometheus text at /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..errors import NotFound
from .deps import Ops
from .models import ErrorBody, MetricsBody, MetricsSavedBody

router = APIRouter(tags=["metrics"])


@router.get("/api/metrics", response_model=MetricsBody, response_model_exclude_none=True)
async def all_metrics(ops: Ops) -> dict[str, Any]:
    return await ops.metrics_summary()


@router.get("/api/metrics/performance")
async def performance(ops: Ops) -> dict[str, Any]:
    return ops.metrics.performance()


@router.get("/api/metrics/errors")
async def errors(ops: Ops) -> dict[str, Any]:
    return ops.metrics.errors()


@router.get("/api/metrics/instances")
async def instances(ops: Ops) -> dict[str, Any]:
    views = await ops.instance_views(ops.metrics.instances())
    return {"instances": views, "count": len(views)}


@router.get("/api/metrics/instances/{instance}", responses={404: {"model": ErrorBody}})
async def one_instance(instance: str, ops: Ops) -> dict[str, Any]:
    views = await ops.instance_views(ops.metrics.instances())
    if instance not in views:
        raise NotFound(f"unknown instance {instance!r}", known=sorted(views))
    return views[instance]


@router.post("/api/metrics/save", responses={200: {"model": MetricsSavedBody}, 500: {"model": ErrorBody}})
async def save(ops: Ops) -> JSONResponse:
    try:
        await ops.metrics.asave()  # fsync off the event loop
    except OSError as exc:  # already logged and shown by the persistence status
        return JSONResponse({"error": f"metrics could not be saved: {exc}", "code": "metrics_save_failed",
                             "persistence": ops.metrics.persistence_status()}, status_code=500)
    return JSONResponse({"message": "metrics saved", "persistence": ops.metrics.persistence_status()})


@router.get("/api/metrics/persistence")
async def persistence(ops: Ops) -> dict[str, Any]:
    return ops.metrics.persistence_status()


@router.get("/metrics", include_in_schema=False)
async def prometheus(ops: Ops) -> Response:
    await ops.refresh_gauges()
    body, content_type = ops.prom.render()
    return Response(body, media_type=content_type)
