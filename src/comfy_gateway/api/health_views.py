"""/health, /status and /status/metrics as the original middleware answered them (SEED-API.md §8).

The router gathers the live figures into a `Snapshot`; these functions shape them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..jobs.model import JobState
from ..jobs.store import StoreCounts
from ..observability.formats import epoch_ms, num, pct2, pct_n, whole
from ..observability.job_counts import Tally
from ..observability.job_metrics import MetricsReading
from ..observability.timestamps import iso
from ..overview import InstanceSnapshot
from . import breaker_views
from .metrics_views import instance_id, percentiles, system

HIGH_ERROR_RATE_PCT = 20  # above this, with more than HIGH_ERROR_MIN_JOBS jobs, a healthy gateway is degraded
HIGH_ERROR_MIN_JOBS = 10


@dataclass(frozen=True)
class Snapshot:
    """What the health views read, gathered once per request."""

    reading: MetricsReading
    pool: tuple[InstanceSnapshot, ...]
    processor_running: bool
    admitting: bool
    max_concurrent_jobs: int
    storage_problem: dict[str, str] | None  # {"error", "code"} while the job store or blobs fail

    @property
    def healthy(self) -> int:
        return sum(1 for i in self.pool if i.healthy)

    @property
    def active_jobs(self) -> int:
        return sum(i.active_jobs for i in self.pool)


def assess(snap: Snapshot, *, error_rate_rule: bool) -> tuple[str, list[str]]:
    """healthy, degraded (some servers down, or many failures) or critical (none up, or not working),
    and the reasons, worded as the original."""
    total, healthy = len(snap.pool), snap.healthy
    issues: list[str] = []
    status = "healthy"
    if healthy == 0:
        status = "critical"
        issues.append("No healthy ComfyUI instances available")
    elif healthy < total:
        status = "degraded"
        issues.append(f"{total - healthy} of {total} ComfyUI instances unhealthy")
    if not (snap.processor_running and snap.admitting):
        status = "critical"
        issues.append("Job processor not running")
    if snap.storage_problem is not None:
        status = "critical"
        issues.append(f"Job storage failing: {snap.storage_problem['error']}")
    jobs = snap.reading.counts.totals
    if error_rate_rule and jobs.total > HIGH_ERROR_MIN_JOBS and jobs.failed * 100 > HIGH_ERROR_RATE_PCT * jobs.total:
        status = "degraded" if status == "healthy" else status
        issues.append(f"High error rate: {pct_n(jobs.failed, jobs.total)}")
    return status, issues


def _instance_entry(position: int, snap: InstanceSnapshot) -> dict[str, Any]:
    ours = dict(snap.detail)
    breaker = {k: v for k, v in ours.pop("circuit_breaker").items() if k not in ("state", "consecutive_failures")}
    ours.pop("last_check_at")  # the same moment as `last_health_check`
    return {"id": instance_id(position), "host": snap.name, "is_healthy": snap.healthy,
            "last_health_check": epoch_ms(snap.last_check_at),
            "circuit_breaker": {**breaker_views.brief(snap.figures), **breaker},
            "active_jobs": snap.active_jobs, **ours}


def _connections(pool: tuple[InstanceSnapshot, ...]) -> dict[str, Any]:
    """The WebSocket pools: every open socket takes any number of prompts, so none is ever queued for."""
    stats = {i.name: {"host": i.name, "total": i.sockets_open, "connected": i.sockets_open,
                      "available": i.sockets_open, "queued": 0, "totalUses": i.sockets_opened}
             for i in pool if i.sockets_opened}
    return {"total_pools": len(stats), "pool_stats": stats}


def _performance(reading: MetricsReading) -> dict[str, Any]:
    t = reading.counts.totals
    return {"total_jobs_processed": t.total, "success_rate": pct2(t.successful, t.total),
            "error_rate": pct_n(t.failed, t.total), "average_processing_time_seconds": num(t.mean_ms / 1000),
            "jobs_per_hour": reading.jobs_per_hour}


def health(snap: Snapshot, counts: StoreCounts) -> dict[str, Any]:
    status, issues = assess(snap, error_rate_rule=True)
    now = iso(snap.reading.now)
    up = system(snap.reading)
    return {
        "status": status, "timestamp": now,
        "uptime": {"total_uptime_ms": up["total_uptime_ms"], "total_uptime_hours": up["total_uptime_hours"],
                   "session_uptime_ms": up["session_uptime_ms"], "session_uptime_hours": up["session_uptime_hours"],
                   "started_at": up["system_start_time"], "session_started_at": up["session_start_time"]},
        "comfyui_instances": {
            "total": len(snap.pool), "healthy": snap.healthy, "unhealthy": len(snap.pool) - snap.healthy,
            "instances": [_instance_entry(n, i) for n, i in enumerate(snap.pool, start=1)]},
        "job_processing": {
            "processor_running": snap.processor_running, "active_jobs": snap.active_jobs,
            "max_concurrent_jobs": snap.max_concurrent_jobs, "total_jobs_in_memory": counts.total,
            "pending_jobs": counts.by_state.get(JobState.PENDING.value, 0),
            "processing_jobs": counts.by_state.get(JobState.PROCESSING.value, 0), "admitting": snap.admitting},
        "connections": _connections(snap.pool),
        "performance": _performance(snap.reading),
        "issues": issues,
        "last_health_check": now,
        "storage": {"ok": snap.storage_problem is None, **(snap.storage_problem or {})},
    }


def quick_status(snap: Snapshot) -> dict[str, Any]:
    status, _ = assess(snap, error_rate_rule=False)
    return {"status": status, "timestamp": iso(snap.reading.now), "healthy_instances": snap.healthy,
            "total_instances": len(snap.pool), "active_jobs": snap.active_jobs,
            "total_jobs_processed": snap.reading.counts.totals.total,
            "uptime_hours": system(snap.reading)["total_uptime_hours"], "processor_running": snap.processor_running}


def _tally_view(t: Tally) -> dict[str, Any]:
    return {"total_jobs": t.total, "completed_jobs": t.successful, "failed_jobs": t.failed,
            "success_rate": pct2(t.successful, t.total), "average_processing_time_ms": whole(t.mean_ms)}


def basic_metrics(snap: Snapshot) -> dict[str, Any]:
    """/status/metrics: the dashboard view, the inner figures in snake_case."""
    reading, t = snap.reading, snap.reading.counts.totals
    up, points = system(reading), percentiles(reading)
    active = {i.name: i.active_jobs for i in snap.pool}
    return {
        "timestamp": iso(reading.now),
        "system": {"uptime_hours": up["total_uptime_hours"], "session_uptime_hours": up["session_uptime_hours"],
                   "started_at": up["system_start_time"]},
        "jobs": {"total_processed": t.total, "completed": t.successful, "failed": t.failed,
                 "success_rate": pct2(t.successful, t.total), "error_rate": pct_n(t.failed, t.total),
                 "jobs_per_hour": reading.jobs_per_hour, "currently_active": snap.active_jobs,
                 "max_concurrent": snap.max_concurrent_jobs},
        "performance": {"average_processing_time_ms": num(t.mean_ms),
                        "average_processing_time_seconds": num(t.mean_ms / 1000),
                        "min_processing_time_ms": points["min_ms"], "max_processing_time_ms": points["max_ms"],
                        "p50_processing_time_ms": points["p50_ms"], "p95_processing_time_ms": points["p95_ms"]},
        "instances": {host: {**_tally_view(tally), "current_active_jobs": active.get(host, 0)}
                      for host, tally in sorted(reading.counts.instances.items())},
        "job_types": {name: _tally_view(tally) for name, tally in sorted(reading.counts.by_type.items())},
    }
