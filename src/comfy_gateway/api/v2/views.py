"""How jobs, outputs and assets look under /api/v2: the Comfy API v2 bodies, built in one place.

Every URL is absolute (built from the address the client used), every timestamp carries its
timezone, and a field the contract marks nullable is present with `null` rather than left out.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ...graph_jobs import CANCELED, OutputAsset, outputs_of
from ...jobs.assets import AssetRecord
from ...jobs.model import Job, JobState
from ...observability.timestamps import iso
from ...settings import Settings

PREFIX = "/api/v2"
# Failure codes of the gateway that the contract names otherwise.
_JOB_ERROR_CODES = {"workflow_failed": "node_execution_error", "workflow_rejected": "invalid_workflow"}
EXPIRED_CODES = frozenset({"queue_timeout"})  # failed for waiting too long: never ran


def v2_status(job: Job) -> str:
    if job.state is JobState.PENDING:
        return "queued"
    if job.state is JobState.PROCESSING:
        return "running" if job.canceling_at is None else "canceling"
    if job.state is JobState.COMPLETED:
        return "succeeded"
    code = (job.error or {}).get("code")
    if code == CANCELED:
        return "canceled"
    return "expired" if code in EXPIRED_CODES else "failed"


def expires_at(job: Job, settings: Settings) -> float:
    """When its outputs go (RESULT_TTL), else when the janitor may remove it: its retention after it
    ends (or after the latest it can end)."""
    if job.expires_at is not None:
        return job.expires_at
    retention = settings.job_cleanup_interval / 1000
    if job.finished_at is not None:
        return job.finished_at + retention
    return job.created_at + settings.queue_timeout_s + settings.job_timeout_s + retention


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)


def progress_body(job: Job) -> dict[str, Any] | None:
    if job.state not in (JobState.PROCESSING, JobState.COMPLETED):
        return None
    total = int(job.input_meta.get("nodes", 0))
    value = 1.0 if job.state is JobState.COMPLETED else max(0.0, min(1.0, job.progress / 100))
    # The recorded fraction is (finished nodes + the running node's share) / nodes: its floor counts them.
    return {"value": value, "nodes_done": min(total, math.floor(value * total)), "nodes_total": total}


def error_body(job: Job) -> dict[str, Any] | None:
    if job.state is not JobState.FAILED or v2_status(job) == "canceled":
        return None
    error = job.error or {}
    code = str(error.get("code") or "failed")
    return {"code": _JOB_ERROR_CODES.get(code, code), "message": str(error.get("message") or "the job failed"),
            "node_id": error.get("node_id"), "class_type": error.get("node_type"), "traceback": None}


def content_url(base: str, asset_id: str) -> str:
    return f"{base}{PREFIX}/assets/{asset_id}/content"


def output_body(job: Job, output: dict[str, Any], base: str, settings: Settings) -> dict[str, Any]:
    return {"node_id": output["node_id"], "name": output["name"], "type": output["type"],
            "content_type": output["content_type"], "size_bytes": output["size_bytes"], "id": output["id"],
            "hash": output.get("hash"), "url": content_url(base, output["id"]),
            "url_expires_at": iso(expires_at(job, settings)), "job_id": job.id}


def job_body(job: Job, base: str, settings: Settings, queue_position: int | None = None) -> dict[str, Any]:
    """`queue_position`: of a queued job, 1 + the jobs queued before it in this gateway (creation
    order across every tenant; the fair-share claim may take it sooner or later)."""
    link = f"{base}{PREFIX}/jobs/{job.id}"
    queued_s = job.queue_wait_seconds
    run_s = job.processing_seconds
    return {
        "id": job.id,
        "status": v2_status(job),
        "created_at": iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.finished_at),
        "expires_at": iso(expires_at(job, settings)),
        "queue_position": queue_position if job.state is JobState.PENDING else None,
        "progress": progress_body(job),
        "outputs": [output_body(job, out, base, settings) for out in outputs_of(job)],
        "error": error_body(job),
        "metrics": {"queue_ms": None if queued_s is None else round(queued_s * 1000),
                    "execution_ms": None if run_s is None else round(run_s * 1000)},
        "metadata": dict(job.params.get("metadata") or {}),
        "urls": {"self": link, "events": f"{link}/events", "cancel": f"{link}/cancel"},
    }


def list_item(job: Job, base: str, settings: Settings, queue_position: int | None = None) -> dict[str, Any]:
    return {**job_body(job, base, settings, queue_position), "create_time": iso(job.created_at),
            "update_time": iso(job.updated_at)}


def asset_body(record: AssetRecord, base: str, settings: Settings, *,
               created_new: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id, "hash": record.hash, "size_bytes": record.size_bytes, "content_type": record.content_type,
        "file_path": record.file_path, "created_at": iso(record.created_at), "url": content_url(base, record.id),
        "url_expires_at": iso(time.time() + settings.job_cleanup_interval / 1000), "expires_at": None,
        "job_id": None,
    }
    if created_new is not None:
        body["created_new"] = created_new
    return body


def output_asset_body(found: OutputAsset, base: str, settings: Settings) -> dict[str, Any]:
    job, out = found.job, found.output
    until = iso(expires_at(job, settings))
    return {"id": out["id"], "hash": out.get("hash"), "size_bytes": out["size_bytes"],
            "content_type": out["content_type"], "file_path": out["name"],
            "created_at": iso(job.finished_at or job.updated_at), "url": content_url(base, out["id"]),
            "url_expires_at": until, "expires_at": until, "job_id": job.id}
