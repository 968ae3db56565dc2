"""Task endpoints: upload an image, run a workflow on it, sync (wait for the result) or async (202).

The seed's three routes are the built-in workflows; `/api/run/{workflow}` serves any workflow the
operator adds. Sync and async share one path: a sync request is an async job plus a wait.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from ..access import Principal
from ..background import cancel_and_wait
from ..errors import InvalidInput, ServiceUnavailable, SyncTimeout
from ..jobs.model import Job, JobState
from ..service import JobService
from ..workflows.registry import Workflow
from . import idempotency
from .deps import Caller, Service
from .models import AsyncAccepted, ErrorBody, SyncResult, WorkflowsBody
from .uploads import UPLOAD_BODY, read_upload
from .views import (
    CROP_TASK,
    accepted_body,
    failure_response,
    image_response,
    json_with_data_uri,
    sync_body,
    wants_image,
)

router = APIRouter(tags=["tasks"])

SEED_TASKS = ("remove-background", "upscale-image", "upscale-remove-bg")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 413, 415, 422, 429, 502, 503, 504)
}

AsyncFlag = Annotated[bool | None, Query(alias="async", description="true: answer 202 with a job id")]
Mode = Annotated[Literal["sync", "async"] | None, Query(description="async: same as async=true")]
Format = Annotated[str | None, Query(max_length=20, description="output image format: PNG, JPEG or WEBP (any case)")]
FORMATS = ("PNG", "JPEG", "WEBP")
IdemKey = Annotated[str | None, Header(alias=idempotency.HEADER, description=(
    "retrying with the same key returns the same job instead of starting another"))]


def _params(workflow: Workflow, request: Request, fields: dict[str, str]) -> dict[str, Any]:
    raw = {k: v for k, v in {**fields, **request.query_params}.items() if k in workflow.parameters}
    return workflow.validate_params(raw)


def _output_format(fields: dict[str, str], query_format: str | None) -> str:
    """As the original: the form field, else the query, else PNG; upper-cased, one of FORMATS."""
    name = (fields.get("format") or query_format or "PNG").upper()
    if name not in FORMATS:
        raise InvalidInput("Invalid format", details=f"Format must be one of: {', '.join(FORMATS)}",
                           parameter="format")
    return name.lower()


def _crop(fields: dict[str, str], query_crop: str | None) -> bool:
    """As the original: the form field if present (even empty), else the query; only "false" is false."""
    return fields.get("crop", query_crop) != "false"


def _estimate(service: JobService, workflow: Workflow, pending: int, seconds: float | None) -> str:
    """The seed's display string: a range around the estimate, or the manifest's range per round."""
    if seconds is not None:
        return f"{max(1, math.floor(seconds * 0.8))}-{max(2, math.ceil(seconds * 1.25))} seconds"
    low, high = workflow.estimated_seconds
    rounds = 1 + pending // max(1, service.settings.max_concurrent_jobs)
    return f"{low * rounds}-{high * rounds} seconds"


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (its body is read by now: nothing else comes but that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _wait_while_connected(service: JobService, request: Request, submitted: Job) -> Job | None:
    """The sync wait for the `submitted` job, given up (None) as soon as the client disconnects."""
    job_id = submitted.id
    waiting = asyncio.create_task(service.wait_sync(job_id, submitted), name=f"sync-wait-{job_id}")
    gone = asyncio.create_task(_disconnected(request), name=f"sync-client-{job_id}")
    try:
        await asyncio.wait([waiting, gone], return_when=asyncio.FIRST_COMPLETED)
    finally:  # both are ours: neither outlives this request, whichever way it ends
        await cancel_and_wait(gone)
        if not waiting.done():
            await cancel_and_wait(waiting)
    return None if waiting.cancelled() else waiting.result()


async def run_task(service: JobService, workflow: Workflow, request: Request, caller: Principal, *, run_async: bool,
                   fmt: str | None, idempotency_key: str | None) -> Response:
    service.check_admission(sync=not run_async)
    upload = await read_upload(request, service.settings.max_image_pixels)
    params: dict[str, Any] = {"workflow": _params(workflow, request, upload.fields),
                              "format": _output_format(upload.fields, fmt)}
    if workflow.name == CROP_TASK:
        params["crop"] = _crop(upload.fields, request.query_params.get("crop"))
    callback = request.query_params.get("callback_url") or upload.fields.get("callback_url")
    if callback:
        params["callback_url"] = await service.checked_callback_url(callback)
    key = idempotency.checked_key(idempotency_key)
    if key is not None:
        params["request_fingerprint"] = idempotency.fingerprint(workflow.name, params, upload.data)
    params["original_filename"] = upload.filename  # shown by the job views; no part of the fingerprint
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        params["request_id"] = request_id  # so the job's log lines can be traced to the request
    job, created = await service.submit(workflow.name, upload.data, upload.info, params, caller,
                                        idempotency_key=key)
    if not created:
        idempotency.check_same_request(job, params["request_fingerprint"])
    del upload
    replayed = {} if created else {idempotency.REPLAYED_HEADER: "true"}
    if run_async:
        seconds = await service.estimated_seconds(job)
        pending = 0 if seconds is not None else await service.pending_count()
        body = accepted_body(job, _estimate(service, workflow, pending, seconds))
        return JSONResponse(body, status_code=202, headers={"Location": body["status_url"], **replayed})
    finished = await _wait_while_connected(service, request, job)
    if finished is None:  # the client hung up: nobody to answer, the job goes on as an async one
        return Response(status_code=499)
    job = finished
    if not job.state.finished and service.admission.stopped.is_set():
        raise ServiceUnavailable(f"the gateway is restarting; job {job.id} goes on after the restart: poll its status",
                                 retry_after=5, job_id=job.id, status_url=f"/api/jobs/{job.id}/status")
    if job.state is JobState.FAILED:
        return failure_response(job)
    if job.state is not JobState.COMPLETED:
        raise SyncTimeout("the job did not finish in time; poll its status", job_id=job.id,
                          status_url=f"/api/jobs/{job.id}/status")
    data = await service.result_bytes(job)
    if wants_image(request):
        answer = image_response(job, data)
    else:
        answer = json_with_data_uri(sync_body(job), ("imageBase64",), job.result_meta["content_type"], data)
    answer.headers.update(replayed)
    return answer


def _add_seed_routes(name: str) -> None:
    async def sync_or_async(request: Request, service: Service, caller: Caller,
                            async_: AsyncFlag = None, mode: Mode = None, format: Format = None,
                            idempotency_key: IdemKey = None) -> Response:
        return await run_task(service, service.workflow(name), request, caller,
                              run_async=bool(async_) or mode == "async", fmt=format, idempotency_key=idempotency_key)

    async def always_async(request: Request, service: Service, caller: Caller,
                           format: Format = None, idempotency_key: IdemKey = None) -> Response:
        return await run_task(service, service.workflow(name), request, caller, run_async=True, fmt=format,
                              idempotency_key=idempotency_key)

    router.add_api_route(f"/api/{name}", sync_or_async, methods=["POST"], response_model=SyncResult,
                         responses={202: {"model": AsyncAccepted}, **ERRORS}, openapi_extra=UPLOAD_BODY,
                         summary=f"Run {name} (sync; ?async=true for a job)", name=f"{name}-sync")
    router.add_api_route(f"/api/async/{name}", always_async, methods=["POST"], status_code=202,
                         response_model=AsyncAccepted, responses=ERRORS, openapi_extra=UPLOAD_BODY,
                         summary=f"Submit a {name} job", name=f"{name}-async")


for _name in SEED_TASKS:
    _add_seed_routes(_name)


@router.post("/api/run/{workflow}", response_model=SyncResult, openapi_extra=UPLOAD_BODY,
             responses={202: {"model": AsyncAccepted}, **ERRORS}, summary="Run any configured workflow")
async def run_any(workflow: str, request: Request, service: Service, caller: Caller,
                  async_: AsyncFlag = None, mode: Mode = None, format: Format = None,
                  idempotency_key: IdemKey = None) -> Response:
    return await run_task(service, service.workflow(workflow), request, caller,
                          run_async=bool(async_) or mode == "async", fmt=format, idempotency_key=idempotency_key)


@router.get("/api/workflows", response_model=WorkflowsBody,
            summary="The workflows this gateway serves and their parameters")
async def list_workflows(service: Service) -> dict[str, Any]:
    items = []
    for wf in service.workflows():
        items.append({"name": wf.name, "description": wf.description, "input_mode": wf.input_mode,
                      "parameters": {p.name: {"type": p.type, "default": p.default, "min": p.min, "max": p.max,
                                              "choices": list(p.choices) if p.choices else None}
                                     for p in wf.parameters.values()}})
    return {"workflows": items}
