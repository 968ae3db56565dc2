"""The seed's metrics API (JSON, persisted) and Prometheus text at /metrics.

Every body holds the original's keys (SEED-API.md §9) with the gateway's own figures beside them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ..errors import NotFound
from ..observability.timestamps import iso
from ..overview import Overview
from ..service import JobService
from . import metrics_views as seed
from .deps import Ops, Service
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


async def _seed_metrics(ops: Overview, service: JobService) -> dict[str, Any]:
    """§9.4's `metrics` object: getStats plus the load balancer, processor, job manager and utilization."""
    reading = await ops.reading()
    snaps = await ops.instances()
    return {**seed.stats(reading), "load_balancer": seed.load_balancer(snaps),
            "job_processor": seed.processor_seed_stats(service.settings, seed.usage_of(snaps),
                                                       running=ops.processor_running),
            "job_manager": seed.job_manager_seed(await service.counts()),
            "instance_utilization": seed.instance_utilization(reading)}


@router.get("/api/metrics", response_model=MetricsBody)
async def all_metrics(ops: Ops, service: Service) -> JSONResponse:
    ours = await ops.metrics_summary()
    return JSONResponse({"timestamp": ours.pop("timestamp"), "metrics": await _seed_metrics(ops, service), **ours})


@router.get("/api/metrics/performance", response_model=PerformanceBody)
async def performance(ops: Ops) -> JSONResponse:
    reading = await ops.reading()
    return JSONResponse({"timestamp": iso(reading.now), "performance": seed.performance(reading),
                         **ops.metrics.performance()})


@router.get("/api/metrics/errors", response_model=ErrorsBody)
async def errors(ops: Ops) -> JSONResponse:
    reading = await ops.reading()
    return JSONResponse({"timestamp": iso(reading.now), "errors": seed.errors_report(reading), **ops.metrics.errors()})


@router.get("/api/metrics/instances", response_model=InstancesBody)
async def instances(ops: Ops) -> JSONResponse:
    reading = await ops.reading()
    views = await ops.instance_views(ops.metrics.instances())
    merged = {name: {**seed.inst_stats(seed.tally_of(reading, name)), **view} for name, view in views.items()}
    return JSONResponse({"timestamp": iso(reading.now), "instances": merged,
                         "utilization": seed.instance_utilization(reading),
                         "load_balancer": seed.load_balancer(await ops.instances()), "count": len(views)})


@router.get("/api/metrics/instances/{instance}", response_model=InstanceMetricsBody,
            responses={404: {"model": InstanceNotFoundBody}})
async def one_instance(instance: str, ops: Ops) -> JSONResponse:
    reading = await ops.reading()
    views = await ops.instance_views(ops.metrics.instances())
    if instance not in views:
        raise NotFound("Instance not found", available_instances=sorted(views),
                       details=f"no server or metrics named {instance!r}")
    view = views[instance]
    snap = next((s for s in await ops.instances() if s.name == instance), None)
    return JSONResponse({"timestamp": iso(reading.now), "instance": instance,
                         "metrics": seed.one_instance(reading, snap, instance, view["active_jobs"]), **view})


@router.post("/api/metrics/save", response_model=MetricsSavedBody, responses={500: {"model": MetricsSaveFailedBody}})
async def save(ops: Ops) -> JSONResponse:
    try:
        await ops.metrics.asave()  # fsync off the event loop
    except OSError as exc:  # already logged and shown by the persistence status
        return JSONResponse({"error": "Failed to force save metrics", "details": str(exc),
                             "code": "metrics_save_failed", "persistence": ops.metrics.persistence_status()},
                            status_code=500)
    reading = ops.metrics.reading()
    return JSONResponse({"message": "Metrics saved successfully", "timestamp": iso(reading.now),
                         "file_path": str(reading.file_path), "persistence": ops.metrics.persistence_status()})


@router.get("/api/metrics/persistence", response_model=PersistenceBody)
async def persistence(ops: Ops, service: Service) -> JSONResponse:
    reading = ops.metrics.reading()
    return JSONResponse({"timestamp": iso(reading.now),
                         "persistence": seed.persistence(reading, service.settings.metrics_save_interval),
                         **ops.metrics.persistence_status()})


@router.get("/metrics", include_in_schema=False)
async def prometheus(ops: Ops) -> Response:
    await ops.refresh_gauges()
    body, content_type = ops.prom.render()
    return Response(body, media_type=content_type)
