"""The bodies of /health, /status, /status/metrics and the circuit-breaker routes (SEED-API.md §8, §10)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .models import EpochMs, ErrorBody, Iso, OpenBody, Pct2, PctN


class BreakerBrief(OpenBody):
    state: str = Field(description="CLOSED, OPEN or HALF_OPEN")
    failures: int
    error_rate: Pct2


class InstanceHealth(OpenBody):
    id: str = Field(description="instance-1, instance-2, ... in the configured order")
    host: str
    is_healthy: bool
    last_health_check: EpochMs | None
    circuit_breaker: BreakerBrief | None
    active_jobs: int
    name: str
    url: str
    healthy: bool
    last_probe_ok: bool | None
    last_response_ms: float | None
    last_error: str | None


class InstancesHealth(OpenBody):
    total: int
    healthy: int
    unhealthy: int
    instances: list[InstanceHealth]


class Uptime(OpenBody):
    total_uptime_ms: int
    total_uptime_hours: float
    session_uptime_ms: int
    session_uptime_hours: float
    started_at: Iso
    session_started_at: Iso


class JobProcessing(OpenBody):
    processor_running: bool
    active_jobs: int
    max_concurrent_jobs: int
    total_jobs_in_memory: int
    pending_jobs: int
    processing_jobs: int
    admitting: bool


class PoolStats(OpenBody):
    host: str
    total: int
    connected: int
    available: int
    queued: int
    totalUses: int


class Connections(OpenBody):
    total_pools: int
    pool_stats: dict[str, PoolStats]


class HealthPerformance(OpenBody):
    total_jobs_processed: int
    success_rate: Pct2
    error_rate: PctN
    average_processing_time_seconds: float
    jobs_per_hour: float


class StorageHealth(OpenBody):
    ok: bool = Field(description="false while the job store or blob storage fails")
    error: str | None = None
    code: str | None = Field(None, description="store_unavailable | insufficient_storage")


class HealthBody(OpenBody):
    status: str = Field(description="healthy | degraded | critical")
    timestamp: Iso
    uptime: Uptime
    comfyui_instances: InstancesHealth
    job_processing: JobProcessing
    connections: Connections
    performance: HealthPerformance
    issues: list[str]
    last_health_check: Iso
    storage: StorageHealth


class QuickStatusBody(OpenBody):
    status: str
    timestamp: Iso
    healthy_instances: int
    total_instances: int
    active_jobs: int
    total_jobs_processed: int
    uptime_hours: float
    processor_running: bool


class BasicSystem(OpenBody):
    uptime_hours: float
    session_uptime_hours: float
    started_at: Iso


class BasicJobs(OpenBody):
    total_processed: int
    completed: int
    failed: int
    success_rate: Pct2
    error_rate: PctN
    jobs_per_hour: float
    currently_active: int
    max_concurrent: int


class BasicPerformance(OpenBody):
    average_processing_time_ms: float
    average_processing_time_seconds: float
    min_processing_time_ms: int
    max_processing_time_ms: int
    p50_processing_time_ms: int
    p95_processing_time_ms: int


class TallyView(OpenBody):
    total_jobs: int
    completed_jobs: int
    failed_jobs: int
    success_rate: Pct2
    average_processing_time_ms: float


class InstanceTallyView(TallyView):
    current_active_jobs: int


class BasicMetricsBody(OpenBody):
    timestamp: Iso
    system: BasicSystem
    jobs: BasicJobs
    performance: BasicPerformance
    instances: dict[str, InstanceTallyView]
    job_types: dict[str, TallyView]


class BreakerWindow(OpenBody):
    totalRequests: int
    errorCount: int
    errorRate: Pct2


class ListedBreaker(OpenBody):
    state: str = Field(description="CLOSED, OPEN or HALF_OPEN")
    failures: int
    successes: int
    metrics: BreakerWindow
    nextAttempt: Iso | None = Field(description="while OPEN")
    resetTimeout: int = Field(description="ms: the wait the next opening imposes")


class BreakersBody(OpenBody):
    timestamp: Iso
    breakers: dict[str, ListedBreaker] = Field(description="by the original's names")
    circuit_breakers: dict[str, dict[str, Any]] = Field(description="by server, the gateway's own view")


class BreakerStatus(OpenBody):
    name: str
    state: str
    failures: int
    successes: int
    nextAttempt: EpochMs | None = Field(description="while OPEN")
    currentResetTimeout: int
    metrics: BreakerWindow


class BreakerChangeBody(OpenBody):
    message: str
    name: str
    newStatus: BreakerStatus
    circuit_breaker: dict[str, Any]


class BreakerNotFoundBody(ErrorBody):
    name: str
