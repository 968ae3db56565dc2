"""Job endpoints: status and result for clients, and the admin views of the seed."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..errors import JobNotFound
from ..jobs.model import JobState
from ..jobs.store import JobFilter
from .deps import Caller, Ops, Service
from .metrics_views import job_manager_stats, processor_seed_stats, usage_of
from .models import (
    CleanupBody,
    DeletedBody,
    JobInfoBody,
    JobListBody,
    JobNotCompletedBody,
    JobNotFoundBody,
    JobResultBody,
    JobStatsBody,
    JobStatusBody,
    ProcessorStatsBody,
)
from .views import image_response, info_body, json_with_data_uri, not_finished, result_body, status_body, wants_image

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": JobNotFoundBody}}


@router.get("/stats", response_model=JobStatsBody)
async def job_stats(service: Service) -> JSONResponse:
    return JSONResponse(job_manager_stats(await service.counts(), time.time()))


@router.get("/processor/stats", response_model=ProcessorStatsBody)
async def processor_stats(service: Service, ops: Ops) -> JSONResponse:
    s = service.settings
    snaps = await ops.instances()
    instances = {snap.name: {
        "active_jobs": snap.active_jobs, "max_jobs": s.max_jobs_per_instance,
        "utilization": f"{100 * snap.active_jobs / s.max_jobs_per_instance:.0f}%",
        "healthy": snap.healthy,
        "circuit_breaker": snap.breaker.value,
        "running_here": list(snap.running_here),
    } for snap in snaps}
    return JSONResponse({
        **processor_seed_stats(s, usage_of(snaps), running=ops.processor_running),
        "processor_running": ops.processor_running,
        "active_jobs": sum(snap.active_jobs for snap in snaps),
        "active_jobs_this_replica": ops.running_here,
        "pending_jobs": await service.pending_count(),
        "max_concurrent_jobs": s.max_concurrent_jobs,
        "max_jobs_per_instance": s.max_jobs_per_instance,
        "instances": instances,
        "replica": s.replica_id,
        "dispatch": "event-driven",
    })


@router.get("/list", response_model=JobListBody)
async def list_jobs(
    service: Service,
    status: Annotated[str | None, Query(max_length=20, description="pending, processing, completed or failed")] = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    instance: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> JSONResponse:
    state = JobState(status) if status in set(JobState) else None
    # As the original: an empty value is no filter, an unknown status matches no job.
    jobs = [] if status and state is None else await service.list(
        JobFilter(state=state, type=type or None, instance=instance or None, limit=limit, offset=offset))
    return JSONResponse({"jobs": [info_body(j) for j in jobs], "total": len(jobs), "count": len(jobs),
                         "filters": {"status": status or None, "type": type or None, "instance": instance or None}})


@router.post("/cleanup", response_model=CleanupBody)
async def cleanup(service: Service) -> JSONResponse:
    removed = await service.cleanup_finished()
    return JSONResponse({"message": f"Cleaned up {removed} expired jobs", "cleanedCount": removed, "removed": removed})


@router.get("/{job_id}/status", response_model=JobStatusBody, responses=NOT_FOUND)
async def job_status(job_id: str, service: Service, caller: Caller) -> JSONResponse:
    job = await service.get(job_id, caller)
    return JSONResponse(status_body(job, service.average_seconds(job.type),
                                    estimate_s=await service.estimated_seconds(job)))


@router.get("/{job_id}/result", response_model=JobResultBody,
            responses={**NOT_FOUND, 409: {"model": JobNotCompletedBody}, 200: {"content": {"image/png": {}}}})
async def job_result(job_id: str, request: Request, service: Service, caller: Caller) -> Response:
    job = await service.get(job_id, caller)
    if job.state is not JobState.COMPLETED:
        raise not_finished(job)
    data = await service.result_bytes(job)
    if wants_image(request):
        return image_response(job, data)
    return json_with_data_uri(result_body(job), ("result", "image_base64"), job.result_meta["content_type"], data)


@router.get("/{job_id}/events", responses={**NOT_FOUND, 200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: str, service: Service, caller: Caller) -> StreamingResponse:
    """Live status as server-sent events: one `status` event per change, the last one when it ends."""
    await service.get(job_id, caller)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        try:  # fed by the job's own events: the store is read only when the job changed
            async for current in service.updates(job_id):
                body = status_body(current, service.average_seconds(current.type))
                shown = {k: body[k] for k in ("status", "progress_percentage", "comfyui_instance", "attempt")}
                if shown != last:
                    last = shown
                    yield f"event: status\ndata: {json.dumps(body)}\n\n"
        except JobNotFound:
            yield f"event: deleted\ndata: {json.dumps({'job_id': job_id})}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/{job_id}/info", response_model=JobInfoBody, responses=NOT_FOUND)
async def job_info(job_id: str, service: Service, caller: Caller) -> JSONResponse:
    return JSONResponse(info_body(await service.get(job_id, caller)))


@router.delete("/{job_id}", response_model=DeletedBody, responses=NOT_FOUND)
async def delete_job(job_id: str, service: Service, caller: Caller) -> JSONResponse:
    job = await service.delete(job_id, caller)
    return JSONResponse({"message": "Job deleted successfully", "job_id": job_id,
                         "cancelled": job.state is JobState.PROCESSING})
