"""Operational job metrics (the `/api/metrics*` and `/status/metrics` figures), persisted to JSON.

Counted from events the dispatcher reports:

- `job_started(type, instance, queue_wait_s)` when an attempt begins on a server;
- `job_released(instance, processing_s)` when an attempt ends without ending the job (it will be
  retried elsewhere): the server is no longer busy with it, nothing is counted as processed;
- `job_finished(type, instance, ok, processing_s, job_id=..., error=...)` once per job, at the end.

Definitions (the shapes of the reads are the public contract):

- rates are the original's strings: success rates "98.50%", error rates "1.5%"; with no jobs "0%";
- processing-time averages and percentiles cover *successful* jobs: a failure's duration is mostly
  a timeout or an early error and would say nothing about how long work takes. Instance busy time
  counts every attempt, because the server was busy either way;
- percentiles are nearest-rank over the last `sample_size` values; averages cover all values;
- `jobs_per_hour` = total processed / hours since the metrics began (the first start, persisted),
  with the denominator floored at one minute so a fresh gateway does not report absurd rates;
- `uptime` is this process's; `uptime.metrics_since` is when counting began;
- an instance's `utilization_percent` = busy seconds / seconds since the instance was first seen,
  x 100, capped at 100 (several jobs at once on one server can exceed wall time);
- `errors_by_type` is keyed by job type, `errors_by_instance` by server ("unassigned" when the job
  failed before reaching one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .formats import num, pct_n
from .job_counts import (
    UNASSIGNED,
    Counts,
    InstanceTally,
    Tally,
    instance_view,
    jobs_per_hour,
    merge_states,
    percentiles,
    rate,
    to_ms,
    type_view,
)
from .json_file import read_json, write_json_atomic
from .logging import get_logger
from .timestamps import iso

STATE_VERSION = 1
RECENT_ERRORS = 100


@dataclass(frozen=True)
class MetricsReading:
    """A moment's figures: the counters, the recent successful durations and errors (oldest first)."""

    now: float
    process_started_at: float
    counts: Counts
    processing_ms: tuple[float, ...]
    recent_errors: tuple[dict[str, Any], ...]
    jobs_per_hour: int | float
    file_path: Path
    save_interval_s: float | None


class JobMetrics:
    def __init__(
        self,
        path: Path,
        *,
        replica: str = "local",
        clock: Callable[[], float] = time.time,
        sample_size: int = 1000,
    ) -> None:
        self._path = path
        self._replica = replica
        self._clock = clock
        self._sample_size = sample_size
        self._process_started_at = clock()
        self._counts = Counts(metrics_started_at=self._process_started_at)
        self._processing_ms: deque[float] = deque(maxlen=sample_size)
        self._queue_wait_ms: deque[float] = deque(maxlen=sample_size)
        self._recent_errors: deque[dict[str, Any]] = deque(maxlen=RECENT_ERRORS)
        self._save_interval_s: float | None = None
        self._last_saved_at: float | None = None
        self._last_save_ok: bool | None = None
        self._log = get_logger("metrics", replica=replica)

    # ---- events ---------------------------------------------------------------------------------

    def job_started(self, job_type: str, instance: str, queue_wait_s: float | None) -> None:
        """`queue_wait_s` None: a retry, whose wait was counted at its first start."""
        self._instance(instance).active += 1
        if queue_wait_s is None:
            return
        wait_ms = max(0.0, queue_wait_s) * 1000.0
        self._queue_wait_ms.append(wait_ms)
        self._counts.queue_wait_ms_sum += wait_ms
        self._counts.queue_wait_count += 1

    def job_released(self, instance: str, processing_s: float | None = None) -> None:
        """An attempt ended but the job goes on elsewhere: free the server, count its busy time."""
        stats = self._instance(instance)
        stats.active = max(0, stats.active - 1)
        if processing_s is not None:
            stats.busy_s += max(0.0, processing_s)

    def job_finished(
        self,
        job_type: str,
        instance: str | None,
        ok: bool,
        processing_s: float | None,
        *,
        job_id: str,
        error: str | None = None,
        attempt_s: float | None = None,
    ) -> None:
        """`processing_s` is the whole job's time; `attempt_s` (default: the same) the final server's."""
        now = self._clock()
        processing_ms = None if processing_s is None else max(0.0, processing_s) * 1000.0
        attempt_s = processing_s if attempt_s is None else attempt_s
        counts = self._counts
        counts.totals.count(ok, processing_ms)
        counts.by_type.setdefault(job_type, Tally()).count(ok, processing_ms)
        if instance is not None:
            stats = self._instance(instance)
            stats.count(ok, None if attempt_s is None else max(0.0, attempt_s) * 1000.0)
            stats.active = max(0, stats.active - 1)
            stats.last_job_at = now
            if attempt_s is not None:
                stats.busy_s += max(0.0, attempt_s)
        if ok:
            if processing_ms is not None:
                self._processing_ms.append(processing_ms)
            return
        counts.errors_by_type[job_type] += 1
        counts.errors_by_instance[instance or UNASSIGNED] += 1
        self._recent_errors.append(
            {
                "timestamp": iso(now),
                "job_id": job_id,
                "job_type": job_type,
                "instance": instance,
                "message": error or "unknown error",
            }
        )

    def _instance(self, name: str) -> InstanceTally:
        stats = self._counts.instances.get(name)
        if stats is None:
            stats = self._counts.instances[name] = InstanceTally(first_seen=self._clock())
        return stats

    # ---- reads ----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        now = self._clock()
        totals = self._counts.totals
        uptime_s = max(0.0, now - self._process_started_at)
        return {
            "timestamp": iso(now),
            "replica": self._replica,
            "uptime": {
                "start_time": iso(self._process_started_at),
                "total_uptime_ms": int(uptime_s * 1000),
                "total_uptime_hours": num(uptime_s / 3600, 2),
                "metrics_since": iso(self._counts.metrics_started_at),
            },
            "jobs": {
                "total_processed": totals.total,
                "total_successful": totals.successful,
                "total_failed": totals.failed,
                "success_rate": rate(totals.successful, totals.total),
                "jobs_per_hour": self._jobs_per_hour(now),
                "by_type": {name: type_view(t) for name, t in sorted(self._counts.by_type.items())},
            },
            "performance": self.performance(),
            "instances": self.instances(),
            "errors": self.errors(),
        }

    def performance(self) -> dict[str, Any]:
        totals = self._counts.totals
        queue_avg = (
            self._counts.queue_wait_ms_sum / self._counts.queue_wait_count
            if self._counts.queue_wait_count
            else 0.0
        )
        return {
            "average_processing_time_ms": totals.average_ms,
            "average_processing_time_seconds": num(totals.mean_ms / 1000, 2),  # not from the rounded ms
            **percentiles("processing_time", self._processing_ms),
            "average_queue_wait_ms": to_ms(queue_avg),
            **percentiles("queue_wait", self._queue_wait_ms),
            "jobs_per_hour": self._jobs_per_hour(self._clock()),
            "success_rate": rate(totals.successful, totals.total),
        }

    def errors(self) -> dict[str, Any]:
        counts = self._counts
        return {
            "total_errors": counts.totals.failed,
            "error_rate": pct_n(counts.totals.failed, counts.totals.total),
            "recent_errors": [dict(e) for e in reversed(self._recent_errors)],
            "errors_by_type": dict(counts.errors_by_type),
            "errors_by_instance": dict(counts.errors_by_instance),
        }

    def instances(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {name: instance_view(name, s, now) for name, s in sorted(self._counts.instances.items())}

    def instance(self, name: str) -> dict[str, Any] | None:
        stats = self._counts.instances.get(name)
        return None if stats is None else instance_view(name, stats, self._clock())

    def reading(self) -> MetricsReading:
        """The raw figures, for views that shape them another way (the original's wire format)."""
        now = self._clock()
        return MetricsReading(now=now, process_started_at=self._process_started_at, counts=self._counts,
                              processing_ms=tuple(self._processing_ms), recent_errors=tuple(self._recent_errors),
                              jobs_per_hour=self._jobs_per_hour(now), file_path=self._path,
                              save_interval_s=self._save_interval_s)

    def average_processing_seconds(self, job_type: str) -> float | None:
        """Mean processing time of this type's successful jobs (None before the first one);
        used to estimate the time a running job has left."""
        tally = self._counts.by_type.get(job_type)
        if tally is None or not tally.processing_count:
            return None
        return tally.processing_ms_sum / tally.processing_count / 1000

    def _jobs_per_hour(self, now: float) -> int | float:
        return jobs_per_hour(self._counts.totals.total, self._counts.metrics_started_at, now)

    # ---- persistence ----------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Everything needed to restore these metrics, or to sum them with other replicas'."""
        return {
            "version": STATE_VERSION,
            "replica": self._replica,
            "saved_at": self._clock(),
            **self._counts.to_dict(),
            "samples": {
                "processing_ms": list(self._processing_ms),
                "queue_wait_ms": list(self._queue_wait_ms),
            },
            "recent_errors": list(self._recent_errors),
        }

    def save(self) -> None:
        """Write the state to the file now. Raises OSError (after recording it) if that fails."""
        state = self.export_state()
        try:
            write_json_atomic(self._path, state)
        except OSError as exc:
            self._record_save(ok=False, exc=exc)
            raise
        self._record_save(ok=True)

    async def asave(self) -> None:
        """`save()` with the file I/O off the event loop."""
        state = self.export_state()
        try:
            await asyncio.to_thread(write_json_atomic, self._path, state)
        except OSError as exc:
            self._record_save(ok=False, exc=exc)
            raise
        self._record_save(ok=True)

    async def run_autosave(self, interval_s: float) -> None:
        """Save every `interval_s` until cancelled; a failed save is logged and retried next time."""
        self._save_interval_s = interval_s
        while True:
            await asyncio.sleep(interval_s)
            # A failure is already logged and shown by persistence_status(); try again next time.
            with contextlib.suppress(OSError):
                await self.asave()

    def _record_save(self, *, ok: bool, exc: OSError | None = None) -> None:
        self._last_save_ok = ok
        if ok:
            self._last_saved_at = self._clock()
            self._log.debug("Metrics saved", file_path=str(self._path))
        else:
            self._log.warning("Metrics save failed", file_path=str(self._path), error=str(exc))

    def load(self) -> bool:
        """Restore counters and samples from the file. A missing or unreadable file leaves the
        metrics empty (logged) and returns False; never raises for bad content."""
        if not self._path.exists():
            self._log.info("No metrics file yet, starting empty", file_path=str(self._path))
            return False
        try:
            data = read_json(self._path)
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported metrics file version {data.get('version')!r}")
            counts = Counts.from_dict(data)
            processing = [float(v) for v in data["samples"]["processing_ms"]]
            queue_wait = [float(v) for v in data["samples"]["queue_wait_ms"]]
            recent = [dict(e) for e in data["recent_errors"]]
        except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
            self._log.warning(
                "Metrics file unreadable, starting empty", file_path=str(self._path), error=str(exc)
            )
            return False
        for stats in counts.instances.values():
            stats.active = 0  # jobs of a previous process are not running here
        self._counts = counts
        self._processing_ms = deque(processing, maxlen=self._sample_size)
        self._queue_wait_ms = deque(queue_wait, maxlen=self._sample_size)
        self._recent_errors = deque(recent, maxlen=RECENT_ERRORS)
        self._log.info("Metrics restored", file_path=str(self._path), total_processed=counts.totals.total)
        return True

    def persistence_status(self) -> dict[str, Any]:
        try:
            size: int | None = self._path.stat().st_size
        except OSError:
            size = None
        return {
            "file_path": str(self._path),
            "save_interval_ms": None if self._save_interval_s is None else int(self._save_interval_s * 1000),
            "last_saved_at": None if self._last_saved_at is None else iso(self._last_saved_at),
            "last_save_ok": self._last_save_ok,
            "file_exists": size is not None,
            "file_size_bytes": size or 0,
        }

    # ---- cluster view ---------------------------------------------------------------------------

    @staticmethod
    def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Sum several replicas' `export_state()` into one totals view (jobs, instances, errors)."""
        return merge_states(snapshots)
