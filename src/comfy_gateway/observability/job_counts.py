"""The counters behind `JobMetrics`: what is persisted, how it reads, how replicas add up.

Plain data and pure functions; `job_metrics.py` owns the events, the clock and the file.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .formats import num, pct2, pct_n
from .timestamps import iso

UNASSIGNED = "unassigned"  # errors_by_instance key for jobs that failed before reaching a server
MIN_RATE_WINDOW_S = 60.0  # jobs per hour counts at least a minute, so a fresh gateway reports no absurd rate


@dataclass
class Tally:
    total: int = 0
    successful: int = 0
    failed: int = 0
    processing_ms_sum: float = 0.0
    processing_count: int = 0

    def count(self, ok: bool, processing_ms: float | None) -> None:
        self.total += 1
        if ok:
            self.successful += 1
            if processing_ms is not None:
                self.processing_ms_sum += processing_ms
                self.processing_count += 1
        else:
            self.failed += 1

    def add(self, other: Tally) -> None:
        self.total += other.total
        self.successful += other.successful
        self.failed += other.failed
        self.processing_ms_sum += other.processing_ms_sum
        self.processing_count += other.processing_count

    @property
    def mean_ms(self) -> float:
        """Unrounded: what any figure derived from the average (its seconds) is rounded from."""
        return self.processing_ms_sum / self.processing_count if self.processing_count else 0.0

    @property
    def average_ms(self) -> int:
        return to_ms(self.mean_ms)


@dataclass
class InstanceTally(Tally):
    active: int = 0
    busy_s: float = 0.0
    first_seen: float = 0.0
    last_job_at: float | None = None

    def add(self, other: Tally) -> None:
        super().add(other)
        if isinstance(other, InstanceTally):
            self.active += other.active
            self.busy_s += other.busy_s
            self.first_seen = min(self.first_seen, other.first_seen) if self.first_seen else other.first_seen
            if other.last_job_at is not None:
                self.last_job_at = max(self.last_job_at or 0.0, other.last_job_at)


@dataclass
class Counts:
    """Everything that is persisted and summed across replicas."""

    metrics_started_at: float
    totals: Tally = field(default_factory=Tally)
    by_type: dict[str, Tally] = field(default_factory=dict)
    instances: dict[str, InstanceTally] = field(default_factory=dict)
    queue_wait_ms_sum: float = 0.0
    queue_wait_count: int = 0
    errors_by_type: Counter[str] = field(default_factory=Counter)
    errors_by_instance: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics_started_at": self.metrics_started_at,
            "totals": asdict(self.totals),
            "by_type": {name: asdict(t) for name, t in self.by_type.items()},
            "instances": {name: asdict(t) for name, t in self.instances.items()},
            "queue_wait": {"sum_ms": self.queue_wait_ms_sum, "count": self.queue_wait_count},
            "errors_by_type": dict(self.errors_by_type),
            "errors_by_instance": dict(self.errors_by_instance),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counts:
        """Rebuild from `to_dict` output; raises KeyError/TypeError/ValueError on a malformed one."""
        return cls(
            metrics_started_at=float(data["metrics_started_at"]),
            totals=Tally(**data["totals"]),
            by_type={str(k): Tally(**v) for k, v in data["by_type"].items()},
            instances={str(k): InstanceTally(**v) for k, v in data["instances"].items()},
            queue_wait_ms_sum=float(data["queue_wait"]["sum_ms"]),
            queue_wait_count=int(data["queue_wait"]["count"]),
            errors_by_type=Counter({str(k): int(v) for k, v in data["errors_by_type"].items()}),
            errors_by_instance=Counter({str(k): int(v) for k, v in data["errors_by_instance"].items()}),
        )


@dataclass
class Merged:
    """Several replicas' counters summed, with their recent samples and errors pooled."""

    counts: Counts
    replicas: list[str]
    processing_ms: list[float]  # the successful durations of every replica's sample
    recent_errors: list[dict[str, Any]]  # oldest first


def merge_counts(snapshots: Iterable[dict[str, Any]]) -> Merged:
    """Sum several replicas' `export_state()`."""
    merged: Counts | None = None
    replicas: list[str] = []
    processing: list[float] = []
    errors: list[dict[str, Any]] = []
    for snap in snapshots:
        counts = Counts.from_dict(snap)
        replicas.append(str(snap.get("replica", "")))
        processing.extend(float(v) for v in snap.get("samples", {}).get("processing_ms", []))
        errors.extend(dict(e) for e in snap.get("recent_errors", []))
        if merged is None:
            merged = counts
            continue
        merged.metrics_started_at = min(merged.metrics_started_at, counts.metrics_started_at)
        merged.totals.add(counts.totals)
        for name, tally in counts.by_type.items():
            merged.by_type.setdefault(name, Tally()).add(tally)
        for name, inst in counts.instances.items():
            merged.instances.setdefault(name, InstanceTally()).add(inst)
        merged.errors_by_type.update(counts.errors_by_type)
        merged.errors_by_instance.update(counts.errors_by_instance)
    errors.sort(key=lambda e: str(e.get("timestamp", "")))
    return Merged(merged or Counts(metrics_started_at=0.0), replicas, processing, errors)


def merge_states(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum several replicas' `export_state()` into one totals view (jobs, instances, errors)."""
    pooled = merge_counts(snapshots)
    merged, replicas, processing = pooled.counts, pooled.replicas, pooled.processing_ms
    totals = merged.totals
    ordered = sorted(processing)
    return {
        "replicas": replicas,
        "jobs": {
            "total_processed": totals.total,
            "total_successful": totals.successful,
            "total_failed": totals.failed,
            "success_rate": rate(totals.successful, totals.total),
            "by_type": {name: type_view(t) for name, t in sorted(merged.by_type.items())},
        },
        "performance": {
            "average_processing_time_ms": totals.average_ms,
            "p50_processing_time_ms": percentile(ordered, 50),
            "p95_processing_time_ms": percentile(ordered, 95),
        },
        "instances": {name: instance_view(name, s, time.time()) for name, s in sorted(merged.instances.items())},
        "errors": {
            "total_errors": totals.failed,
            "error_rate": pct_n(totals.failed, totals.total),
            "errors_by_type": dict(merged.errors_by_type),
            "errors_by_instance": dict(merged.errors_by_instance),
        },
    }


def jobs_per_hour(total: int, since: float, now: float) -> int | float:
    return num(total / (max(MIN_RATE_WINDOW_S, now - since) / 3600), 2)


def type_view(t: Tally) -> dict[str, Any]:
    return {
        "total": t.total,
        "successful": t.successful,
        "failed": t.failed,
        "success_rate": rate(t.successful, t.total),
        "average_processing_time_ms": t.average_ms,
    }


def instance_view(name: str, s: InstanceTally, now: float) -> dict[str, Any]:
    seen_s = now - s.first_seen
    utilization = min(100.0, s.busy_s / seen_s * 100) if seen_s > 0 else 0.0
    return {
        "instance": name,
        "total_jobs": s.total,
        "successful_jobs": s.successful,
        "failed_jobs": s.failed,
        "active_jobs": s.active,
        "success_rate": rate(s.successful, s.total),
        "average_processing_time_ms": s.average_ms,
        "utilization_percent": round(utilization, 1),
        "last_job_at": None if s.last_job_at is None else iso(s.last_job_at),
    }


def percentiles(name: str, values: Iterable[float]) -> dict[str, int]:
    ordered = sorted(values)
    return {f"p{p}_{name}_ms": percentile(ordered, p) for p in (50, 90, 95, 99)}


def percentile(ordered: list[float], p: float) -> int:
    """Nearest-rank percentile of an already sorted list (0 when empty)."""
    if not ordered:
        return 0
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return to_ms(ordered[rank - 1])


def to_ms(value: float) -> int:
    return round(value)


def rate(part: int, whole: int) -> str:
    return pct2(part, whole)

