"""Response bodies as typed models, so /docs shows every shape the original's clients rely on.

The routers send JSON they build themselves (views.py and friends); these models describe it, and a
test validates live answers against the OpenAPI schema generated from them. The original's keys come
first in each model; the gateway's own follow. Extra keys are allowed everywhere (`OpenBody`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Iso = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", examples=["2026-12-01T07:07:21.939Z"])]
Pct2 = Annotated[str, Field(pattern=r"^(0|\d+\.\d\d)%$", examples=["98.50%", "0%"])]
PctN = Annotated[str, Field(pattern=r"^\d+(\.\d{1,2})?%$", examples=["1.5%", "50%"])]
EpochMs = Annotated[int, Field(description="milliseconds since the Unix epoch")]


class OpenBody(BaseModel):
    """A documented shape that may carry more fields than it names."""

    model_config = ConfigDict(extra="allow")


class ErrorBody(OpenBody):
    error: str
    code: str
    details: Any = None


class JobNotFoundBody(ErrorBody):
    job_id: str | None = None


class JobNotCompletedBody(ErrorBody):
    status: str
    message: str
    status_url: str


class SyncResult(OpenBody):
    imageBase64: str = Field(description="data:image/...;base64,... of the result")
    promptId: str | None
    jobId: str
    format: str = Field(description="PNG, JPEG or WEBP")
    crop: bool | None = Field(None, description="remove-background only")


class AsyncAccepted(OpenBody):
    job_id: str
    status: str
    message: str
    estimated_completion_time: str
    status_url: str
    result_url: str
    format: str
    crop: bool | None = Field(None, description="remove-background only")


class JobStatusBody(OpenBody):
    job_id: str
    status: str = Field(description="pending, processing, completed or failed")
    type: str
    created_time: Iso
    updated_time: Iso
    processing_time_seconds: int = Field(description="since creation, queue time included; frozen once ended")
    comfyui_instance: str | None
    message: str
    estimated_completion_time_seconds: int | None = Field(None, description="pending only")
    prompt_id: str | None = Field(None, description="processing, once known")
    estimated_remaining_time_seconds: int
    completed_time: Iso | None = Field(None, description="completed only")
    result_url: str | None = Field(None, description="completed only")
    progress_percentage: int
    error: str | None = Field(None, description="failed only")
    failed_time: Iso | None = Field(None, description="failed only")
    error_details: dict[str, Any] | None = Field(None, description="failed only: the reason, with its code")
    eta_seconds: float = Field(description="seconds until the job is expected to end, to a tenth")
    attempt: int
    created_at: Iso
    queue_position: int | None = None


class JobResultPayload(OpenBody):
    image_base64: str
    prompt_id: str | None
    content_type: str
    width: int | None = None
    height: int | None = None


class JobResultBody(OpenBody):
    job_id: str
    status: str
    type: str
    completed_time: Iso
    processing_time_seconds: int
    result: JobResultPayload


class JobData(OpenBody):
    imageSize: int = Field(description="bytes")
    mimeType: str
    originalFilename: str
    format: str
    crop: bool | None = Field(None, description="remove-background only")
    submittedAt: Iso
    imageBase64_size: str = Field(description='always "[removed - use result endpoint]"')


class JobResultRef(OpenBody):
    promptId: str | None
    base64_size: str = Field(description='always "[removed - use result endpoint]"')


class JobInfoBody(OpenBody):
    """The original's sanitised job (camelCase, epoch ms), then the gateway's own fields."""

    id: str
    type: str
    status: str
    data: JobData
    createdTime: EpochMs
    updatedTime: EpochMs
    comfyuiInstance: str | None
    result: JobResultRef | None
    error: str | None
    processingStartTime: EpochMs | None = None
    completedTime: EpochMs | None = None
    failedTime: EpochMs | None = None
    processingDuration: int | None = Field(None, description="ms, from the start of processing")
    promptId: str | None = None
    errorDetails: dict[str, Any] | None = None
    job_id: str
    attempt: int
    comfyui_instance: str | None
    prompt_id: str | None
    created_at: Iso
    started_at: Iso | None
    finished_at: Iso | None
    processing_time_seconds: float | None
    queue_wait_seconds: float | None
    progress_percentage: int
    params: dict[str, Any]
    input: dict[str, Any]
    attempts_history: list[dict[str, Any]]
    lease_owner: str | None
    tenant: str
    priority: int
    webhook_deliveries: list[dict[str, Any]]  # one entry per delivery attempt of its callback_url
    placement: dict[str, Any] | None = Field(None, description="where the current attempt runs and why")
    trace_id: str | None = None  # the job's OpenTelemetry trace, when tracing is on


class JobListBody(OpenBody):
    jobs: list[JobInfoBody]
    total: int
    count: int
    filters: dict[str, str | None]


class JobManagerFigures(OpenBody):
    """The original's job manager statistics (§7.1)."""

    total: int
    byStatus: dict[str, int]
    byType: dict[str, int]
    byInstance: dict[str, int]


class JobStatsBody(JobManagerFigures):
    total_jobs: int
    by_status: dict[str, int]
    timestamp: Iso


class ProcessorFigures(OpenBody):
    """The original's job processor statistics (§7.2)."""

    isRunning: bool
    activeJobs: int
    maxConcurrentJobs: int
    instanceJobCounts: dict[str, int]
    processingInterval: int = Field(description="ms")
    maxJobsPerInstance: int


class ProcessorStatsBody(ProcessorFigures):
    processor_running: bool
    active_jobs: int
    active_jobs_this_replica: int
    pending_jobs: int
    max_concurrent_jobs: int
    max_jobs_per_instance: int
    instances: dict[str, dict[str, Any]]
    replica: str
    dispatch: str


class CleanupBody(OpenBody):
    message: str
    cleanedCount: int
    removed: int


class DeletedBody(OpenBody):
    message: str
    job_id: str
    cancelled: bool


class WorkflowsBody(OpenBody):
    workflows: list[dict[str, Any]]


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
