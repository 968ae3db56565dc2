"""The v2 bodies as pydantic models, for the OpenAPI document (the routes build them in views.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

Status = Literal["queued", "running", "succeeded", "canceling", "canceled", "failed", "expired"]


class ProgressBody(BaseModel):
    value: float
    nodes_done: int
    nodes_total: int


class OutputBody(BaseModel):
    node_id: str
    name: str
    type: Literal["image", "video", "audio", "text", "file", "latent"]
    content_type: str
    size_bytes: int
    id: str
    hash: str | None
    url: str
    url_expires_at: str
    job_id: str


class JobErrorBody(BaseModel):
    code: str
    message: str
    node_id: str | None = None
    class_type: str | None = None
    traceback: str | None = None


class JobUrls(BaseModel):
    self: str
    events: str
    cancel: str


class JobBody(BaseModel):
    id: str
    status: Status
    created_at: str
    started_at: str | None
    completed_at: str | None
    expires_at: str
    queue_position: int | None
    progress: ProgressBody | None
    outputs: list[OutputBody]
    error: JobErrorBody | None
    metrics: dict[str, int | None]
    metadata: dict[str, str]
    urls: JobUrls


class JobListBody(BaseModel):
    jobs: list[JobBody]
    next_cursor: str | None = None


class WorkflowBody(BaseModel):
    workflow: dict[str, Any]
    format: Literal["api"]


class AssetBody(BaseModel):
    id: str
    hash: str | None
    size_bytes: int
    content_type: str
    file_path: str | None
    created_new: bool | None = None
    created_at: str
    url: str
    url_expires_at: str
    expires_at: str | None
    job_id: str | None


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


class HealthBody(BaseModel):
    status: Literal["healthy", "degraded"]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 404, 409, 413, 415, 422, 503)
}
