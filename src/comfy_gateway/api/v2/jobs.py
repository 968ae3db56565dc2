"""Job routes of the Comfy API v2: submit a graph, read, list, cancel, follow its events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ...errors import InvalidInput, InvalidWorkflow, MetadataInvalid
from ...jobs.model import Job
from ...workflows.graph import GRAPH_JOB_TYPE
from ..deps import Caller
from . import cursors, events
from .deps import Jobs, base_url, checked_key, json_body
from .models import ERRORS, JobBody, JobListBody, WorkflowBody
from .views import PREFIX, job_body, list_item, v2_status

router = APIRouter(prefix=PREFIX, tags=["v2"])
STATUSES = frozenset({"queued", "running", "succeeded", "canceling", "canceled", "failed", "expired"})
MAX_LABELS = 16
MAX_LABEL_VALUE_BYTES = 256


def checked_metadata(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or len(raw) > MAX_LABELS:
        raise MetadataInvalid(f"'metadata' must be a map of at most {MAX_LABELS} string labels")
    for key, value in raw.items():
        if not 0 < len(key) <= 40 or not isinstance(value, str) or len(value.encode()) > MAX_LABEL_VALUE_BYTES \
                or not value.isprintable():
            raise MetadataInvalid(f"label {str(key)[:40]!r}: a key of 1-40 characters and a printable string "
                                  f"value of at most {MAX_LABEL_VALUE_BYTES} bytes", key=str(key)[:40])
    return dict(raw)


def checked_extra_data(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"api_key_comfy_org"} \
            or not isinstance(raw.get("api_key_comfy_org", ""), str):
        raise InvalidInput("'extra_data' takes only 'api_key_comfy_org', a string")
    return dict(raw)


@router.post("/jobs", status_code=201, summary="Run an API-format workflow graph", response_model=None,
             responses={201: {"model": JobBody}, **ERRORS})
async def create_job(request: Request, jobs: Jobs, caller: Caller,
                     idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> JSONResponse:
    body = await json_body(request)
    if body.get("webhook_url") is not None or body.get("inputs") is not None:
        raise InvalidWorkflow("'webhook_url' and 'inputs' are reserved and not accepted")
    job = await jobs.submit(body.get("workflow"), caller, idempotency_key=checked_key(idempotency_key),
                            extra_data=checked_extra_data(body.get("extra_data")),
                            metadata=checked_metadata(body.get("metadata")))
    answer = job_body(job, base_url(request), jobs.settings, await jobs.queue_position(job))
    return JSONResponse(answer, status_code=201, headers={"Location": answer["urls"]["self"]})


def _matches(job: Job, statuses: set[str] | None, labels: dict[str, str]) -> bool:
    if statuses is not None and v2_status(job) not in statuses:
        return False
    own = job.params.get("metadata") or {}
    return all(own.get(k) == v for k, v in labels.items())


@router.get("/jobs", summary="Graph jobs, newest first", response_model=None,
            responses={200: {"model": JobListBody}, **ERRORS})
async def list_jobs(request: Request, jobs: Jobs, caller: Caller, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                    cursor: Annotated[str | None, Query(max_length=200)] = None,
                    status: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    statuses = {s.strip() for s in status.split(",") if s.strip()} if status else None
    if statuses and statuses - STATUSES:
        raise InvalidInput(f"unknown status: {sorted(statuses - STATUSES)}", allowed=sorted(STATUSES))
    labels = {k[9:-1]: v for k, v in request.query_params.items() if k.startswith("metadata[") and k.endswith("]")}
    page, last = await jobs.list(caller, limit, cursors.decoded(cursor) if cursor else None)
    base, settings = base_url(request), jobs.settings
    body: dict[str, Any] = {"jobs": [list_item(j, base, settings, await jobs.queue_position(j))
                                     for j in page if _matches(j, statuses, labels)]}
    if last is not None:
        body["next_cursor"] = cursors.encoded(last)
    return body


@router.get("/jobs/{job_id}", summary="One job: status, progress, outputs", response_model=None,
            responses={200: {"model": JobBody}, **ERRORS})
async def get_job(job_id: str, request: Request, jobs: Jobs, caller: Caller) -> JSONResponse:
    job = await jobs.get(job_id, caller)
    # The route clients poll: the body goes out as built (plain JSON types), not walked again by FastAPI.
    return JSONResponse(job_body(job, base_url(request), jobs.settings, await jobs.queue_position(job)))


@router.get("/jobs/{job_id}/workflow", summary="The graph a job runs", response_model=None,
            responses={200: {"model": WorkflowBody}, **ERRORS})
async def get_job_workflow(job_id: str, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    job = await jobs.get(job_id, caller)
    if job.type != GRAPH_JOB_TYPE:
        raise InvalidInput(f"job {job_id} runs the named workflow {job.type!r}, not a submitted graph")
    return {"workflow": job.params["graph"], "format": "api"}


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job (a finished one stays as it is)", response_model=None,
             responses={200: {"model": JobBody}, **ERRORS})
async def cancel_job(job_id: str, request: Request, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    job = await jobs.cancel(job_id, caller)
    return job_body(job, base_url(request), jobs.settings, await jobs.queue_position(job))


@router.get("/jobs/{job_id}/events", summary="Live events (SSE); Last-Event-ID resumes",
            responses={200: {"content": {"text/event-stream": {}}}, **ERRORS})
async def job_events(job_id: str, request: Request, jobs: Jobs, caller: Caller,
                     last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None) -> StreamingResponse:
    job = await jobs.get(job_id, caller)  # 404 before the stream starts
    frames = events.stream(jobs, job, base_url(request), jobs.settings, last_event_id)
    return StreamingResponse(frames, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

