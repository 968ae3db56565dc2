"""How a job is shown to clients: the seed's JSON shapes, built from a Job in one place."""

from __future__ import annotations

import binascii
import json
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ..graph_jobs import shown_params
from ..jobs.model import Job, JobState
from ..observability.timestamps import iso as iso_ms

# The HTTP status a failed job answers with, by the code of its error.
FAILURE_STATUS = {
    "workflow_rejected": 422,
    "invalid_input": 422,
    "workflow_failed": 502,
    "upstream_unavailable": 503,
    "queue_timeout": 503,
    "no_server": 503,
    "job_timed_out": 504,
}


def iso(ts: float | None) -> str | None:
    return None if ts is None else iso_ms(ts)


def json_with_data_uri(body: dict[str, Any], path: tuple[str, ...], content_type: str, data: bytes,
                       status_code: int = 200) -> Response:
    """`body` as JSON with the data URI of `data` at `path`, the same bytes JSONResponse would send.

    The base64 alphabet needs no escaping in JSON, so the encoded image goes into the body as it is:
    one base64 pass instead of base64, a str copy, json.dumps scanning every character and a UTF-8
    encode, which for a result of several megabytes cost hundreds of milliseconds per answer."""
    marker = f"data-uri-{uuid.uuid4().hex}"
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = marker
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()
    head, tail = text.split(json.dumps(marker).encode(), 1)
    prefix = json.dumps(f"data:{content_type};base64,", ensure_ascii=False).encode()[:-1]
    encoded = binascii.b2a_base64(data, newline=False)
    return Response(b"".join((head, prefix, encoded, b'"', tail)), status_code=status_code,
                    media_type="application/json")


def wants_image(request: Request) -> bool:
    """True when the client asked for raw bytes (`Accept: image/*`) rather than JSON."""
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media.startswith("image/"):
            return True
        if media in ("application/json", "application/*"):
            return False
    return False


def image_response(job: Job, data: bytes) -> Response:
    return Response(data, media_type=job.result_meta.get("content_type", "image/png"),
                    headers={"X-Job-ID": job.id, "X-Prompt-ID": str(job.result_meta.get("prompt_id") or "")})


def failure_response(job: Job) -> JSONResponse:
    error = job.error or {"message": "job failed", "code": "failed"}
    status = FAILURE_STATUS.get(str(error.get("code")), 502)
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({"error": error.get("message", "job failed"), "code": error.get("code", "failed"),
                         "job_id": job.id, "status": job.state.value, "details": error},
                        status_code=status, headers=headers)


def remaining_seconds(job: Job, average_s: float | None, estimate_s: float | None = None) -> float | None:
    if job.state.finished:
        return 0.0
    if estimate_s is not None:  # from the measured service times and the queue ahead
        return round(estimate_s, 1)
    elapsed = job.processing_seconds
    if job.state is JobState.PROCESSING and elapsed is not None and job.progress >= 5:
        return round(elapsed * (100 - job.progress) / job.progress, 1)
    if average_s is not None:
        return round(max(0.0, average_s - (elapsed or 0.0)), 1)
    return None


def status_body(job: Job, average_s: float | None, queue_position: int | None = None,
                estimate_s: float | None = None) -> dict[str, Any]:
    seconds = job.processing_seconds
    body: dict[str, Any] = {
        "job_id": job.id,
        "status": job.state.value,
        "type": job.type,
        "processing_time_seconds": None if seconds is None else round(seconds, 3),
        "estimated_remaining_time_seconds": remaining_seconds(job, average_s, estimate_s),
        "progress_percentage": 100 if job.state is JobState.COMPLETED else int(job.progress),
        "comfyui_instance": job.instance,
        "attempt": job.attempt,
        "created_at": iso(job.created_at),
        "queue_position": queue_position,
    }
    if job.state is JobState.FAILED:
        body["error"] = job.error
    return body


def webhook_body(job: Job) -> dict[str, Any]:
    """What a job's callback_url receives: its status, plus where to fetch the result."""
    body = status_body(job, None)
    body["result_url"] = f"/api/jobs/{job.id}/result"
    return body


def info_body(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id, "type": job.type, "status": job.state.value, "attempt": job.attempt,
        "comfyui_instance": job.instance, "prompt_id": job.prompt_id or job.result_meta.get("prompt_id"),
        "created_at": iso(job.created_at), "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
        "processing_time_seconds": job.processing_seconds, "queue_wait_seconds": job.queue_wait_seconds,
        "progress_percentage": int(job.progress), "params": shown_params(job.params), "input": job.input_meta,
        "result": job.result_meta or None, "error": job.error, "attempts_history": job.history,
        "lease_owner": job.lease_owner,
        "tenant": job.tenant, "priority": job.priority, "webhook_deliveries": job.webhook_deliveries,
        "placement": job.placement,
    }
