"""The metrics API's bodies (SEED-API.md §9): the original's objects, then the gateway's own figures."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .models import ErrorBody, Iso, JobManagerFigures, OpenBody, Pct2, PctN, ProcessorFigures


class InstStats(OpenBody):
    totalJobs: int
    completedJobs: int
    failedJobs: int
    totalProcessingTime: int = Field(description="ms")
    averageProcessingTime: float = Field(description="ms, unrounded")
    successRate: Pct2


class Percentiles(OpenBody):
    p50_ms: int
    p90_ms: int
    p95_ms: int
    p99_ms: int
    min_ms: int
    max_ms: int
    recent_sample_size: int
    note: str


class SystemFigures(OpenBody):
    total_uptime_ms: int
    total_uptime_hours: float
    session_uptime_ms: int
    session_uptime_hours: float
    system_start_time: Iso
    session_start_time: Iso
    metrics_file_path: str


class JobFigures(OpenBody):
    total: int
    completed: int
    failed: int
    success_rate: Pct2
    error_rate: PctN
    jobs_per_hour: float


class ProcessingTime(OpenBody):
    average_ms: float
    average_seconds: float
    percentiles: Percentiles
    total_processing_time_ms: int
    total_processing_time_hours: float


class ErrorEntry(OpenBody):
    timestamp: Iso
    type: str
    instance: str
    error: str


class ErrorFigures(OpenBody):
    total_errors: int
    recent_errors: list[ErrorEntry]
    error_history_size: int


class Utilization(OpenBody):
    job_count: int
    utilization_percentage: float
    success_rate: Pct2
    average_processing_time_ms: float


class BalancedInstance(OpenBody):
    host: str
    activeJobs: int
    isHealthy: bool


class LoadBalancer(OpenBody):
    totalInstances: int
    healthyInstances: int
    totalActiveJobs: int
    instances: dict[str, BalancedInstance]


class Stats(OpenBody):
    """`metrics.getStats()` of the original, with the four objects /api/metrics adds."""

    system: SystemFigures
    jobs: JobFigures
    processing_time: ProcessingTime
    instances: dict[str, InstStats]
    job_types: dict[str, InstStats]
    errors: ErrorFigures
    load_balancer: LoadBalancer
    job_processor: ProcessorFigures
    job_manager: JobManagerFigures
    instance_utilization: dict[str, Utilization]


class MetricsBody(OpenBody):
    timestamp: Iso
    metrics: Stats
    replica: str
    uptime: dict[str, Any]
    jobs: dict[str, Any]
    performance: dict[str, Any]
    instances: dict[str, Any]
    errors: dict[str, Any]
    queue: dict[str, Any]


class Performance(OpenBody):
    uptime_hours: float
    total_jobs: int
    success_rate: Pct2
    average_processing_time_seconds: float
    jobs_per_hour: float
    percentiles: Percentiles
    instance_utilization: dict[str, Utilization]


class PerformanceBody(OpenBody):
    timestamp: Iso
    performance: Performance
    success_rate: Pct2
    jobs_per_hour: float
    p95_processing_time_ms: int


class FailedByType(OpenBody):
    total_failed: int
    total_jobs: int
    failure_rate: Pct2


class ErrorsReport(ErrorFigures):
    error_rate: PctN
    failed_jobs_by_type: dict[str, FailedByType]


class ErrorsBody(OpenBody):
    timestamp: Iso
    errors: ErrorsReport
    total_errors: int
    error_rate: PctN
    recent_errors: list[dict[str, Any]] = Field(description="newest first, with the job's id")
    errors_by_type: dict[str, int]
    errors_by_instance: dict[str, int]


class InstanceView(InstStats):
    instance: str
    total_jobs: int
    active_jobs: int
    healthy: bool | None = None
    circuit_breaker: str | None = None


class InstancesBody(OpenBody):
    timestamp: Iso
    instances: dict[str, InstanceView]
    utilization: dict[str, Utilization]
    load_balancer: LoadBalancer
    count: int


class OneInstanceFigures(InstStats):
    current_active_jobs: int
    is_healthy: bool


class InstanceMetricsBody(OpenBody):
    timestamp: Iso
    instance: str
    metrics: OneInstanceFigures
    total_jobs: int
    active_jobs: int


class InstanceNotFoundBody(ErrorBody):
    available_instances: list[str]


class PersistenceFigures(OpenBody):
    file_path: str
    auto_save_enabled: bool
    save_interval_ms: int
    save_interval_minutes: float


class PersistenceBody(OpenBody):
    timestamp: Iso
    persistence: PersistenceFigures
    last_saved_at: Iso | None
    last_save_ok: bool | None
    file_exists: bool
    file_size_bytes: int


class MetricsSavedBody(OpenBody):
    message: str
    timestamp: Iso
    file_path: str
    persistence: dict[str, Any]


class MetricsSaveFailedBody(ErrorBody):
    persistence: dict[str, Any]
