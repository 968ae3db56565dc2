"""Response bodies as typed models, so /docs shows every shape the seed's clients rely on."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    tenant: str
    priority: int
    webhook_deliveries: list[dict[str, Any]]  # one entry per delivery attempt of its callback_url
    placement: dict[str, Any] | None = Field(None, description="where the current attempt runs and why")


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


class OpenBody(BaseModel):
    """A documented shape that may carry more fields than it names (replica and cluster views)."""

    model_config = ConfigDict(extra="allow")


class InstanceHealth(OpenBody):
    name: str
    url: str
    healthy: bool
    last_probe_ok: bool | None
    circuit_breaker: dict[str, Any]
    last_check_at: float | None
    last_response_ms: float | None
    last_error: str | None
    active_jobs: int


class InstancesHealth(OpenBody):
    total: int
    healthy: int
    instances: list[InstanceHealth]


class StorageHealth(OpenBody):
    ok: bool = Field(description="false while the job store or blob storage fails")
    error: str | None = None
    code: str | None = Field(None, description="store_unavailable | insufficient_storage")


class HealthBody(OpenBody):
    status: str = Field(description="healthy | degraded | critical")
    timestamp: str
    uptime: dict[str, Any]
    comfyui_instances: InstancesHealth
    job_processing: dict[str, Any]
    performance: dict[str, Any]
    storage: StorageHealth


class QuickStatusBody(OpenBody):
    status: str
    healthy_instances: int
    active_jobs: int
    uptime_hours: float


class BasicMetricsBody(OpenBody):
    jobs: dict[str, Any]
    performance: dict[str, Any]


class ProcessorStatsBody(OpenBody):
    processor_running: bool
    active_jobs: int
    active_jobs_this_replica: int
    pending_jobs: int
    max_concurrent_jobs: int
    max_jobs_per_instance: int
    instances: dict[str, dict[str, Any]]
    replica: str
    dispatch: str
    safety_sweep_interval_ms: int


class MetricsBody(OpenBody):
    timestamp: str
    uptime: dict[str, Any]
    jobs: dict[str, Any]
    performance: dict[str, Any]
    instances: dict[str, Any]
    errors: dict[str, Any]
    queue: dict[str, Any]


class BreakersBody(OpenBody):
    circuit_breakers: dict[str, dict[str, Any]]


class BreakerChangeBody(OpenBody):
    message: str
    circuit_breaker: dict[str, Any]


class WorkflowsBody(OpenBody):
    workflows: list[dict[str, Any]]


class MetricsSavedBody(OpenBody):
    message: str
    persistence: dict[str, Any]


class OutputEntry(BaseModel):
    index: int = Field(description="its number in GET /api/jobs/{id}/outputs/{index}")
    node_id: str = Field(description="the workflow node that produced it")
    kind: str = Field(description="where ComfyUI listed it: images, gifs (VHS videos too), audio, text, ...")
    filename: str
    subfolder: str
    content_type: str
    size: int = Field(description="bytes")
    sha256: str = Field(description="hex digest of the bytes; the download's ETag")
    url: str = Field(description="where to download it: a presigned URL with RESULT_STORE=s3, else the gateway")
    gateway_url: str = Field(description="the gateway's own download route for it")


class JobOutputsBody(BaseModel):
    job_id: str
    status: str
    expires_at: str | None = Field(description="when the outputs are deleted (410 from then on)")
    count: int
    outputs: list[OutputEntry]
