"""Job endpoints: status and result for clients, and the admin views of the seed."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..errors import JobNotFound
from ..gateway import Gateway
from ..jobs.model import Job, JobState
from ..jobs.store import JobFilter
from .deps import get_gateway
from .metrics_views import job_manager_stats, processor_seed_stats
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
GW = Annotated[Gateway, Depends(get_gateway)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": JobNotFoundBody}}
PROGRESS_INTERVAL_S = 0.25  # how often a running job's progress is written, and so re-read


@router.get("/stats", response_model=JobStatsBody)
async def job_stats(gateway: GW) -> JSONResponse:
    return JSONResponse(job_manager_stats(await gateway.store.counts(), time.time()))


@router.get("/processor/stats", response_model=ProcessorStatsBody)
async def processor_stats(gateway: GW) -> JSONResponse:
    s = gateway.settings
    usage = await gateway.slots.usage()
    running = gateway.dispatcher.running
    instances = {}
    for inst in gateway.pool:
        active = usage.get(inst.name, 0)
        instances[inst.name] = {
            "active_jobs": active, "max_jobs": s.max_jobs_per_instance,
            "utilization": f"{100 * active / s.max_jobs_per_instance:.0f}%",
            "healthy": inst.is_healthy,
            "circuit_breaker": inst.breaker.state.value,
            "running_here": sorted(j for j, r in running.items() if r.instance == inst.name),
        }
    return JSONResponse({
        **processor_seed_stats(s, usage, running=not gateway.dispatcher.draining),
        "processor_running": not gateway.dispatcher.draining,
        "active_jobs_this_replica": len(running),
        "pending_jobs": await gateway.store.pending_count(),
        "max_concurrent_jobs": s.max_concurrent_jobs,
        "max_jobs_per_instance": s.max_jobs_per_instance,
        "instances": instances,
        "replica": s.replica_id,
        "dispatch": "event-driven",
    })


@router.get("/list", response_model=JobListBody)
async def list_jobs(
    gateway: GW,
    status: Annotated[str | None, Query(max_length=20, description="pending, processing, completed or failed")] = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    instance: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> JSONResponse:
    state = JobState(status) if status in set(JobState) else None
    # As the original: an empty value is no filter, an unknown status matches no job.
    jobs = [] if status and state is None else await gateway.store.list(
        JobFilter(state=state, type=type or None, instance=instance or None, limit=limit, offset=offset))
    return JSONResponse({"jobs": [info_body(j) for j in jobs], "total": len(jobs), "count": len(jobs),
                         "filters": {"status": status or None, "type": type or None, "instance": instance or None}})


@router.post("/cleanup", response_model=CleanupBody)
async def cleanup(gateway: GW) -> JSONResponse:
    removed = await gateway.janitor.cleanup_finished()
    return JSONResponse({"message": f"Cleaned up {removed} expired jobs", "cleanedCount": removed, "removed": removed})


@router.get("/{job_id}/status", response_model=JobStatusBody, responses=NOT_FOUND)
async def job_status(job_id: str, gateway: GW) -> JSONResponse:
    job = await gateway.get(job_id)
    return JSONResponse(status_body(job, gateway.metrics.average_processing_seconds(job.type)))


@router.get("/{job_id}/result", response_model=JobResultBody,
            responses={**NOT_FOUND, 409: {"model": JobNotCompletedBody}, 200: {"content": {"image/png": {}}}})
async def job_result(job_id: str, request: Request, gateway: GW) -> Response:
    job = await gateway.get(job_id)
    if job.state is not JobState.COMPLETED:
        raise not_finished(job)
    data = await gateway.result_bytes(job)
    if wants_image(request):
        return image_response(job, data)
    return json_with_data_uri(result_body(job), ("result", "image_base64"), job.result_meta["content_type"], data)


@router.get("/{job_id}/events", responses={**NOT_FOUND, 200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: str, gateway: GW) -> StreamingResponse:
    """Live status as server-sent events: one `status` event per change, the last one when it ends."""
    job = await gateway.get(job_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        current: Job = job
        while True:
            body = status_body(current, gateway.metrics.average_processing_seconds(current.type))
            shown = {k: body[k] for k in ("status", "progress_percentage", "comfyui_instance", "attempt")}
            if shown != last:
                last = shown
                yield f"event: status\ndata: {json.dumps(body)}\n\n"
            if current.state.finished:
                return
            try:  # woken at once when the job ends; progress is re-read at the pace it is recorded
                current = await gateway.wait(job_id, PROGRESS_INTERVAL_S)
            except JobNotFound:
                yield f"event: deleted\ndata: {json.dumps({'job_id': job_id})}\n\n"
                return

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/{job_id}/info", response_model=JobInfoBody, responses=NOT_FOUND)
async def job_info(job_id: str, gateway: GW) -> JSONResponse:
    return JSONResponse(info_body(await gateway.get(job_id)))


@router.delete("/{job_id}", response_model=DeletedBody, responses=NOT_FOUND)
async def delete_job(job_id: str, gateway: GW) -> JSONResponse:
    job = await gateway.delete(job_id)
    return JSONResponse({"message": "Job deleted successfully", "job_id": job_id,
                         "cancelled": job.state is JobState.PROCESSING})
