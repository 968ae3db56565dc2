"""Response bodies as typed models, so /docs shows every shape the seed's clients rely on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str
    code: str


class SyncResult(BaseModel):
    imageBase64: str = Field(description="data:image/...;base64,... of the result")
    promptId: str | None
    jobId: str


class AsyncAccepted(BaseModel):
    job_id: str
    status: str
    message: str
    estimated_completion_time: str
    status_url: str
    result_url: str


class JobStatusBody(BaseModel):
    job_id: str
    status: str
    type: str
    processing_time_seconds: float | None
    estimated_remaining_time_seconds: float | None
    progress_percentage: int
    comfyui_instance: str | None
    attempt: int
    created_at: str
    queue_position: int | None = None
    error: dict[str, Any] | None = None


class JobResultPayload(BaseModel):
    image_base64: str
    prompt_id: str | None
    content_type: str
    width: int | None = None
    height: int | None = None


class JobResultBody(BaseModel):
    job_id: str
    status: str
    result: JobResultPayload


class JobInfoBody(BaseModel):
    job_id: str
    type: str
    status: str
    attempt: int
    comfyui_instance: str | None
    prompt_id: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    processing_time_seconds: float | None
    queue_wait_seconds: float | None
    progress_percentage: int
    params: dict[str, Any]
    input: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts_history: list[dict[str, Any]]
    lease_owner: str | None


class JobListBody(BaseModel):
    jobs: list[JobInfoBody]
    count: int
    filters: dict[str, str | None]


class JobStatsBody(BaseModel):
    total_jobs: int
    by_status: dict[str, int]
    by_type: dict[str, int]
    by_instance: dict[str, int]
    timestamp: str


class MessageBody(BaseModel):
    message: str
    job_id: str | None = None
    removed: int | None = None
