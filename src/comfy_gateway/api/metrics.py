"""The seed's metrics API (JSON, persisted) and Prometheus text at /metrics.

Every body holds the original's keys (SEED-API.md §9) with the gateway's own figures beside them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from ..errors import NotFound
from ..gateway import Gateway
from ..observability.timestamps import iso
from . import metrics_views as seed
from .deps import get_gateway
from .metrics_models import (
    ErrorsBody,
    InstanceMetricsBody,
    InstanceNotFoundBody,
    InstancesBody,
    MetricsBody,
    MetricsSavedBody,
    MetricsSaveFailedBody,
    PerformanceBody,
    PersistenceBody,
)

router = APIRouter(tags=["metrics"])
GW = Annotated[Gateway, Depends(get_gateway)]


async def _seed_metrics(gateway: Gateway) -> dict[str, Any]:
    """§9.4's `metrics` object: getStats plus the load balancer, processor, job manager and utilization."""
    reading = gateway.metrics.reading()
    usage = await gateway.slots.usage()
    return {**seed.stats(reading), "load_balancer": seed.load_balancer(gateway.pool, usage),
            "job_processor": seed.processor_seed_stats(gateway.settings, usage,
                                                       running=not gateway.dispatcher.draining),
            "job_manager": seed.job_manager_seed(await gateway.store.counts()),
            "instance_utilization": seed.instance_utilization(reading)}


@router.get("/api/metrics", response_model=MetricsBody)
async def all_metrics(gateway: GW) -> JSONResponse:
    ours = await gateway.metrics_summary()
    return JSONResponse({"timestamp": ours.pop("timestamp"), "metrics": await _seed_metrics(gateway), **ours})


@router.get("/api/metrics/performance", response_model=PerformanceBody)
async def performance(gateway: GW) -> JSONResponse:
    reading = gateway.metrics.reading()
    return JSONResponse({"timestamp": iso(reading.now), "performance": seed.performance(reading),
                         **gateway.metrics.performance()})


@router.get("/api/metrics/errors", response_model=ErrorsBody)
async def errors(gateway: GW) -> JSONResponse:
    reading = gateway.metrics.reading()
    return JSONResponse({"timestamp": iso(reading.now), "errors": seed.errors_report(reading),
                         **gateway.metrics.errors()})


@router.get("/api/metrics/instances", response_model=InstancesBody)
async def instances(gateway: GW) -> JSONResponse:
    reading = gateway.metrics.reading()
    views = await gateway.instance_views(gateway.metrics.instances())
    merged = {name: {**seed.inst_stats(seed.tally_of(reading, name)), **view} for name, view in views.items()}
    return JSONResponse({"timestamp": iso(reading.now), "instances": merged,
                         "utilization": seed.instance_utilization(reading),
                         "load_balancer": seed.load_balancer(gateway.pool, await gateway.slots.usage()),
                         "count": len(views)})


@router.get("/api/metrics/instances/{instance}", response_model=InstanceMetricsBody,
            responses={404: {"model": InstanceNotFoundBody}})
async def one_instance(instance: str, gateway: GW) -> JSONResponse:
    reading = gateway.metrics.reading()
    views = await gateway.instance_views(gateway.metrics.instances())
    if instance not in views:
        raise NotFound("Instance not found", available_instances=sorted(views),
                       details=f"no server or metrics named {instance!r}")
    view = views[instance]
    metrics = seed.one_instance(reading, gateway.pool.get(instance), instance, view["active_jobs"])
    return JSONResponse({"timestamp": iso(reading.now), "instance": instance, "metrics": metrics,
                         **view})


@router.post("/api/metrics/save", response_model=MetricsSavedBody, responses={500: {"model": MetricsSaveFailedBody}})
async def save(gateway: GW) -> JSONResponse:
    try:
        await gateway.metrics.asave()  # fsync off the event loop
    except OSError as exc:  # already logged and shown by the persistence status
        return JSONResponse({"error": "Failed to force save metrics", "details": str(exc),
                             "code": "metrics_save_failed", "persistence": gateway.metrics.persistence_status()},
                            status_code=500)
    reading = gateway.metrics.reading()
    return JSONResponse({"message": "Metrics saved successfully", "timestamp": iso(reading.now),
                         "file_path": str(reading.file_path), "persistence": gateway.metrics.persistence_status()})


@router.get("/api/metrics/persistence", response_model=PersistenceBody)
async def persistence(gateway: GW) -> JSONResponse:
    reading = gateway.metrics.reading()
    return JSONResponse({"timestamp": iso(reading.now),
                         "persistence": seed.persistence(reading, gateway.settings.metrics_save_interval),
                         **gateway.metrics.persistence_status()})


@router.get("/metrics", include_in_schema=False)
async def prometheus(gateway: GW) -> Response:
    await gateway.refresh_gauges()
    body, content_type = gateway.prom.render()
    return Response(body, media_type=content_type)
