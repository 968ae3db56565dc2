"""How a job is shown to clients: the original middleware's JSON shapes (SEED-API.md §2-§7), built from a
Job in one place. The original's keys come first, in its order; the gateway's own keys follow them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pybase64
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ..errors import JobNotFinished, status_for_code
from ..graph_jobs import shown_params
from ..jobs.model import Job, JobState
from ..observability.formats import epoch_ms, num
from ..observability.timestamps import iso as iso_ms
from ..observability.tracing import trace_id_of

# The original's fixed per-type estimates in seconds (the status endpoint's fallback before any job ran).
SEED_ESTIMATE_S = {"remove-background": 45, "upscale-image": 60, "upscale-remove-bg": 90}
DEFAULT_ESTIMATE_S = 30
REMOVED = "[removed - use result endpoint]"  # stands where the original held image data
CROP_TASK = "remove-background"  # the one task whose answers carry `crop`
JOIN_BELOW_BYTES = 1024 * 1024  # a data URI answer smaller than this is sent as one body
ACCEPTED_MESSAGE = "Job submitted successfully. Use /api/jobs/{job_id}/status to track progress."
STATUS_MESSAGES = {
    JobState.PENDING: "Job is queued for processing",
    JobState.PROCESSING: "Job is currently being processed",
    JobState.COMPLETED: "Job completed successfully",
    JobState.FAILED: "Job failed to process",
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
    encoded = pybase64.b64encode(data)  # SIMD: a tenth of binascii's time on a large result
    parts = (head, prefix, encoded, b'"', tail)
    if len(encoded) < JOIN_BELOW_BYTES:  # one message through the middleware is cheaper than five
        return Response(b"".join(parts), status_code=status_code, media_type="application/json")
    return PartsResponse(parts, status_code=status_code, media_type="application/json")


class PartsResponse(Response):
    """A body sent as the parts it is made of, so that a large one is never copied into one buffer;
    the client receives the same bytes and headers as from `Response(b"".join(parts))`."""

    def __init__(self, parts: tuple[bytes, ...], status_code: int, media_type: str) -> None:
        self.parts = parts
        super().__init__(None, status_code, headers={"content-length": str(sum(len(p) for p in parts))},
                         media_type=media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        for index, part in enumerate(self.parts):
            await send({"type": "http.response.body", "body": part, "more_body": index < len(self.parts) - 1})
        if self.background is not None:
            await self.background()


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


def error_message(job: Job) -> str | None:
    return None if job.error is None else str(job.error.get("message", "job failed"))


def failure_response(job: Job) -> JSONResponse:
    error = job.error or {"message": "job failed", "code": "failed"}
    status = status_for_code(str(error.get("code")))
    headers = {"Retry-After": "5"} if status == 503 else None
    message = str(error.get("message", "job failed"))
    return JSONResponse({"error": message, "details": message, "code": error.get("code", "failed"),
                         "job_id": job.id, "status": job.state.value, "error_details": error},
                        status_code=status, headers=headers)


def output_format(job: Job) -> dict[str, Any]:
    """`format` (upper case) and, for remove-background, `crop`, as the original echoes them."""
    shown: dict[str, Any] = {"format": str(job.params.get("format", "png")).upper()}
    if job.type == CROP_TASK:
        shown["crop"] = bool(job.params.get("crop", True))
    return shown


def accepted_body(job: Job, estimate: str) -> dict[str, Any]:
    return {"job_id": job.id, "status": job.state.value, "message": ACCEPTED_MESSAGE,
            "estimated_completion_time": estimate, "status_url": f"/api/jobs/{job.id}/status",
            "result_url": f"/api/jobs/{job.id}/result", **output_format(job)}


def sync_body(job: Job) -> dict[str, Any]:
    """The sync answer; `imageBase64` is a placeholder that `json_with_data_uri` fills."""
    return {"imageBase64": "", "promptId": job.result_meta.get("prompt_id"), "jobId": job.id, **output_format(job)}


def result_body(job: Job) -> dict[str, Any]:
    """The result answer; `result.image_base64` is a placeholder that `json_with_data_uri` fills."""
    meta = job.result_meta
    return {"job_id": job.id, "status": "completed", "type": job.type, "completed_time": iso(end_time(job)),
            "processing_time_seconds": elapsed_seconds(job),
            "result": {"image_base64": "", "prompt_id": meta.get("prompt_id"), "content_type": meta["content_type"],
                       "width": meta.get("width"), "height": meta.get("height")}}


def not_finished(job: Job) -> JobNotFinished:
    """The 409 of a result asked for before the job completed: the original's keys, plus ours."""
    message = ("Job failed to process" if job.state is JobState.FAILED
               else f"Job is currently {job.state.value}. Check status endpoint for progress.")
    return JobNotFinished("Job not completed", status=job.state.value, message=message,
                          status_url=f"/api/jobs/{job.id}/status", job_id=job.id,
                          progress_percentage=int(job.progress))


def end_time(job: Job) -> float:
    return job.finished_at if job.finished_at is not None else job.updated_at


def elapsed_seconds(job: Job) -> int:
    """Whole seconds since the job was created (queue time included), frozen once it has ended."""
    end = end_time(job) if job.state.finished else time.time()
    return max(0, round(end - job.created_at))


def estimate_seconds(job: Job, average_s: float | None) -> int:
    return round(average_s) if average_s is not None else SEED_ESTIMATE_S.get(job.type, DEFAULT_ESTIMATE_S)


def eta_seconds(job: Job, average_s: float | None, estimate_s: float | None = None) -> float:
    """Seconds until the job is expected to end (0 once it has)."""
    if job.state.finished:
        return 0.0
    if estimate_s is not None:  # from the measured service times and the queue ahead
        return estimate_s
    started = job.processing_seconds
    if job.state is JobState.PROCESSING and started is not None and job.progress >= 5:
        return started * (100 - job.progress) / job.progress
    return max(0.0, estimate_seconds(job, average_s) - (started or 0.0))


def status_body(job: Job, average_s: float | None, queue_position: int | None = None,
                estimate_s: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_id": job.id, "status": job.state.value, "type": job.type,
        "created_time": iso(job.created_at), "updated_time": iso(job.updated_at),
        "processing_time_seconds": elapsed_seconds(job), "comfyui_instance": job.instance,
        "message": STATUS_MESSAGES[job.state],
    }
    eta = eta_seconds(job, average_s, estimate_s)
    if job.state is JobState.PENDING:
        body["estimated_completion_time_seconds"] = round(eta)
    elif job.state is JobState.PROCESSING:
        if job.prompt_id:
            body["prompt_id"] = job.prompt_id
        body["estimated_remaining_time_seconds"] = round(eta)
    elif job.state is JobState.COMPLETED:
        body.update(completed_time=iso(end_time(job)), result_url=f"/api/jobs/{job.id}/result")
    else:
        body.update(error=error_message(job), failed_time=iso(end_time(job)), error_details=job.error)
    body["progress_percentage"] = 100 if job.state is JobState.COMPLETED else int(job.progress)
    body.setdefault("estimated_remaining_time_seconds", round(eta))
    body.update(eta_seconds=num(eta, 1), attempt=job.attempt, created_at=iso(job.created_at),
                queue_position=queue_position)
    return body


def _input_data(job: Job) -> dict[str, Any]:
    meta = job.input_meta
    data: dict[str, Any] = {"imageSize": int(meta.get("size_bytes", 0)), "mimeType": str(meta.get("content_type", "")),
                            "originalFilename": str(job.params.get("original_filename", "")),
                            **output_format(job), "submittedAt": iso(job.created_at), "imageBase64_size": REMOVED}
    return data


def _timeline(job: Job) -> dict[str, Any]:
    """The original's optional time fields, present once they have happened."""
    times: dict[str, Any] = {}
    if job.started_at is not None:
        times["processingStartTime"] = epoch_ms(job.started_at)
    if job.state.finished:
        times["completedTime" if job.state is JobState.COMPLETED else "failedTime"] = epoch_ms(end_time(job))
        if job.started_at is not None:
            times["processingDuration"] = max(0, round((end_time(job) - job.started_at) * 1000))
    if job.prompt_id:
        times["promptId"] = job.prompt_id
    if job.error is not None:
        times["errorDetails"] = job.error
    return times


def webhook_body(job: Job) -> dict[str, Any]:
    """What a job's callback_url receives: its status, plus where to fetch the result."""
    body = status_body(job, None)
    body["result_url"] = f"/api/jobs/{job.id}/result"
    return body


def info_body(job: Job) -> dict[str, Any]:
    """The original's sanitised job (camelCase, epoch ms, no image data), then the gateway's own fields."""
    result = None
    if job.state is JobState.COMPLETED:
        result = {"promptId": job.result_meta.get("prompt_id"), "base64_size": REMOVED, **job.result_meta}
    return {
        "id": job.id, "type": job.type, "status": job.state.value, "data": _input_data(job),
        "createdTime": epoch_ms(job.created_at), "updatedTime": epoch_ms(job.updated_at),
        "comfyuiInstance": job.instance, "result": result, "error": error_message(job), **_timeline(job),
        "job_id": job.id, "attempt": job.attempt, "comfyui_instance": job.instance,
        "prompt_id": job.prompt_id or job.result_meta.get("prompt_id"), "created_at": iso(job.created_at),
        "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
        "processing_time_seconds": job.processing_seconds, "queue_wait_seconds": job.queue_wait_seconds,
        "progress_percentage": int(job.progress),
        "params": shown_params(job.params), "input": job.input_meta, "attempts_history": job.history,
        "lease_owner": job.lease_owner, "trace_id": trace_id_of(job),
        "tenant": job.tenant, "priority": job.priority, "webhook_deliveries": job.webhook_deliveries,
        "placement": job.placement,
    }
