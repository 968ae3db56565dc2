"""Where job events become numbers and log lines: JobMetrics, Prometheus and the job logger."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..jobs.model import Job
from .job_metrics import JobMetrics
from .prometheus import PromMetrics
from .tracing import mark_outcome, trace_id_of


class Telemetry:
    def __init__(self, metrics: JobMetrics, prom: PromMetrics, logger: Any) -> None:
        self.metrics = metrics
        self.prom = prom
        self.log = logger
        # Called with every finished job: webhooks, sharing the figures with other replicas.
        self.finished_listeners: list[Callable[[Job, bool], None]] = []
        self._attempt_started: dict[str, float] = {}  # job id -> when its current attempt began

    def _attempt_seconds(self, job: Job) -> float | None:
        started = self._attempt_started.pop(job.id, None)
        return None if started is None else max(0.0, time.time() - started)

    def _job_log(self, job: Job, instance: str | None) -> Any:
        log = self.log.bind(jobId=job.id, jobType=job.type, instance=instance, attempt=job.attempt,
                            promptId=job.prompt_id, request_id=job.params.get("request_id"))
        trace_id = trace_id_of(job)
        return log if trace_id is None else log.bind(trace_id=trace_id)

    def job_started(self, job: Job, instance: str) -> None:
        self._attempt_started[job.id] = time.time()
        wait = job.queue_wait_seconds or 0.0
        first = job.attempt <= 1
        self.metrics.job_started(job.type, instance, wait if first else None)
        if first:
            self.prom.job_started(job.type, wait)
        self._job_log(job, instance).info("Job started", queueWaitMs=round(wait * 1000, 1))

    def job_finished(self, job: Job, instance: str | None, ok: bool, error: dict[str, Any] | None) -> None:
        seconds = job.processing_seconds
        message = None if error is None else str(error.get("message"))
        self.metrics.job_finished(job.type, instance, ok, seconds, job_id=job.id, error=message,
                                  attempt_s=self._attempt_seconds(job))
        self.prom.job_finished(job.type, instance, "completed" if ok else "failed", seconds)
        mark_outcome(ok, error)
        for listener in self.finished_listeners:
            listener(job, ok)
        log = self._job_log(job, instance)
        duration = None if seconds is None else round(seconds * 1000)
        if ok:
            log.info("Job completed successfully", processingDuration=duration,
                     resultSize=job.result_meta.get("size_bytes"))
        else:
            log.warning("Job failed", processingDuration=duration, error=message,
                        errorCode=(error or {}).get("code"))

    def job_retried(self, job: Job, instance: str, error: dict[str, Any]) -> None:
        self.metrics.job_released(instance, self._attempt_seconds(job))
        self._job_log(job, instance).warning("Job goes back to the queue", error=error.get("message"),
                                             reason=error.get("reason"))

    def job_released(self, job: Job, instance: str) -> None:
        """An attempt stopped without an outcome (deleted, shutdown, lease lost)."""
        self.metrics.job_released(instance, self._attempt_seconds(job))

    def upstream_error(self, instance: str, kind: str) -> None:
        self.prom.upstream_error(instance, kind)

    def log_exception(self, message: str, **context: Any) -> None:
        self.log.exception(message, **context)
