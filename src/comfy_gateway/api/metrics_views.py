"""The original middleware's metrics objects (SEED-API.md §7.1, §7.2, §9), built from the gateway's figures.

Pure functions: the routers gather the figures (a metrics reading, store counts, slot usage, the pool)
and these shape them, key for key, with the original's casing, units and number formats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..jobs.model import JobState
from ..jobs.store import StoreCounts
from ..observability.formats import num, pct2, pct_n, whole
from ..observability.job_counts import UNASSIGNED, Tally, percentile
from ..observability.job_metrics import MetricsReading
from ..observability.timestamps import iso
from ..overview import InstanceSnapshot
from ..settings import Settings

RECENT_ERRORS_SHOWN = 10
PERCENTILE_NOTE = "Based on recent samples only"


def instance_id(position: int) -> str:
    """The original's name for the n-th configured server (1-based): `instance-1`, `instance-2`..."""
    return f"instance-{position}"


def job_manager_seed(counts: StoreCounts) -> dict[str, Any]:
    """§7.1: the jobs the store holds, by status (all four), type and server."""
    return {"total": counts.total,
            "byStatus": {state.value: counts.by_state.get(state.value, 0) for state in JobState},
            "byType": dict(counts.by_type), "byInstance": dict(counts.by_instance)}


def job_manager_stats(counts: StoreCounts, now: float) -> dict[str, Any]:
    seed = job_manager_seed(counts)
    return {**seed, "total_jobs": counts.total, "by_status": seed["byStatus"], "timestamp": iso(now)}


def processor_seed_stats(settings: Settings, usage: Mapping[str, int], *, running: bool) -> dict[str, Any]:
    """§7.2: the dispatcher as the original's job processor described itself."""
    return {"isRunning": running, "activeJobs": sum(usage.values()),
            "maxConcurrentJobs": settings.max_concurrent_jobs,
            "instanceJobCounts": {host: usage.get(host, 0) for host in settings.instance_hosts},
            "processingInterval": settings.job_processing_interval,
            "maxJobsPerInstance": settings.max_jobs_per_instance}


def system(reading: MetricsReading) -> dict[str, Any]:
    total_s = max(0.0, reading.now - reading.counts.metrics_started_at)
    session_s = max(0.0, reading.now - reading.process_started_at)
    return {"total_uptime_ms": int(total_s * 1000), "total_uptime_hours": num(total_s / 3600),
            "session_uptime_ms": int(session_s * 1000), "session_uptime_hours": num(session_s / 3600),
            "system_start_time": iso(reading.counts.metrics_started_at),
            "session_start_time": iso(reading.process_started_at), "metrics_file_path": str(reading.file_path)}


def jobs(reading: MetricsReading) -> dict[str, Any]:
    t = reading.counts.totals
    return {"total": t.total, "completed": t.successful, "failed": t.failed,
            "success_rate": pct2(t.successful, t.total), "error_rate": pct_n(t.failed, t.total),
            "jobs_per_hour": reading.jobs_per_hour}


def percentiles(reading: MetricsReading) -> dict[str, Any]:
    ordered = sorted(reading.processing_ms)
    points = {f"p{p}_ms": percentile(ordered, p) for p in (50, 90, 95, 99)}
    return {**points, "min_ms": round(ordered[0]) if ordered else 0, "max_ms": round(ordered[-1]) if ordered else 0,
            "recent_sample_size": len(ordered), "note": PERCENTILE_NOTE}


def processing_time(reading: MetricsReading) -> dict[str, Any]:
    t = reading.counts.totals
    avg = t.mean_ms
    return {"average_ms": num(avg), "average_seconds": num(avg / 1000), "percentiles": percentiles(reading),
            "total_processing_time_ms": round(t.processing_ms_sum),
            "total_processing_time_hours": num(t.processing_ms_sum / 3_600_000, 3)}


def inst_stats(t: Tally) -> dict[str, Any]:
    """InstStats: camelCase inside the snake_case envelope, as the original."""
    return {"totalJobs": t.total, "completedJobs": t.successful, "failedJobs": t.failed,
            "totalProcessingTime": round(t.processing_ms_sum), "averageProcessingTime": whole(t.mean_ms),
            "successRate": pct2(t.successful, t.total)}


def error_entries(reading: MetricsReading) -> list[dict[str, Any]]:
    """The last errors, oldest first, as the original's ErrorEntry plus the job's id."""
    return [{"timestamp": e["timestamp"], "type": e["job_type"], "instance": e["instance"] or UNASSIGNED,
             "error": e["message"], "job_id": e["job_id"]}
            for e in reading.recent_errors[-RECENT_ERRORS_SHOWN:]]


def errors(reading: MetricsReading) -> dict[str, Any]:
    return {"total_errors": reading.counts.totals.failed, "recent_errors": error_entries(reading),
            "error_history_size": len(reading.recent_errors)}


def instance_utilization(reading: MetricsReading) -> dict[str, Any]:
    """§9.2: each server's share of all jobs."""
    instances = reading.counts.instances
    all_jobs = sum(t.total for t in instances.values())
    return {host: {"job_count": t.total, "utilization_percentage": num(t.total / all_jobs * 100) if all_jobs else 0,
                   "success_rate": pct2(t.successful, t.total), "average_processing_time_ms": whole(t.mean_ms)}
            for host, t in sorted(instances.items())}


def load_balancer(snaps: Sequence[InstanceSnapshot]) -> dict[str, Any]:
    """§9.3, keyed by the original's instance ids."""
    return {"totalInstances": len(snaps), "healthyInstances": sum(1 for i in snaps if i.healthy),
            "totalActiveJobs": sum(i.active_jobs for i in snaps),
            "instances": {instance_id(n): {"host": i.name, "activeJobs": i.active_jobs, "isHealthy": i.healthy}
                          for n, i in enumerate(snaps, start=1)}}


def usage_of(snaps: Sequence[InstanceSnapshot]) -> dict[str, int]:
    return {snap.name: snap.active_jobs for snap in snaps}


def stats(reading: MetricsReading) -> dict[str, Any]:
    """§9.1, `metrics.getStats()`."""
    counts = reading.counts
    return {"system": system(reading), "jobs": jobs(reading), "processing_time": processing_time(reading),
            "instances": {host: inst_stats(t) for host, t in sorted(counts.instances.items())},
            "job_types": {name: inst_stats(t) for name, t in sorted(counts.by_type.items())},
            "errors": errors(reading)}


def performance(reading: MetricsReading) -> dict[str, Any]:
    t = reading.counts.totals
    total_s = max(0.0, reading.now - reading.counts.metrics_started_at)
    return {"uptime_hours": num(total_s / 3600), "total_jobs": t.total, "success_rate": pct2(t.successful, t.total),
            "average_processing_time_seconds": num(t.mean_ms / 1000), "jobs_per_hour": reading.jobs_per_hour,
            "percentiles": percentiles(reading), "instance_utilization": instance_utilization(reading)}


def errors_report(reading: MetricsReading) -> dict[str, Any]:
    """The `errors` object of /api/metrics/errors: the error figures plus failures by job type."""
    t = reading.counts.totals
    by_type = {name: {"total_failed": tally.failed, "total_jobs": tally.total,
                      "failure_rate": pct2(tally.failed, tally.total)}
               for name, tally in sorted(reading.counts.by_type.items())}
    return {"total_errors": t.failed, "error_rate": pct_n(t.failed, t.total), "recent_errors": error_entries(reading),
            "error_history_size": len(reading.recent_errors), "failed_jobs_by_type": by_type}


def persistence(reading: MetricsReading, configured_interval_ms: int) -> dict[str, Any]:
    interval_ms = (configured_interval_ms if reading.save_interval_s is None
                   else round(reading.save_interval_s * 1000))
    return {"file_path": str(reading.file_path), "auto_save_enabled": reading.save_interval_s is not None,
            "save_interval_ms": interval_ms, "save_interval_minutes": whole(interval_ms / 60000)}


def tally_of(reading: MetricsReading, name: str) -> Tally:
    """A server's figures; zero for one that has not run a job yet."""
    return reading.counts.instances.get(name) or Tally()


def one_instance(reading: MetricsReading, snap: InstanceSnapshot | None, name: str, active: int) -> dict[str, Any]:
    """The `metrics` object of /api/metrics/instances/{instance}."""
    return {**inst_stats(tally_of(reading, name)), "current_active_jobs": active,
            "is_healthy": snap is not None and snap.healthy}
