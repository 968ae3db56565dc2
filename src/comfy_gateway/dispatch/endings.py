"""How an attempt ends in the store: completed, failed, or given back to the queue for another server.

Every write names its attempt: one that was abandoned meanwhile (its lease lost, its job deleted)
changes nothing in the store and only frees its server in the figures."""

from __future__ import annotations

import time
from typing import Any, Protocol

from ..comfyui.instance import Instance
from ..errors import UpstreamUnavailable
from ..jobs.events import JobEvents
from ..jobs.model import Job
from ..jobs.store import JobStore
from .execution import JobExecution, Outcome

NOT_PLACED = "not_placed"  # the code of an attempt given back unstarted: no free server could take it
RETRY_AVOID_S = 10.0  # how long a retry stays away from the server its last attempt failed on


class Telemetry(Protocol):
    def job_started(self, job: Job, instance: str) -> None: ...

    def job_finished(self, job: Job, instance: str | None, ok: bool, error: dict[str, Any] | None) -> None: ...

    def job_retried(self, job: Job, instance: str, error: dict[str, Any]) -> None: ...

    def job_released(self, job: Job, instance: str) -> None: ...

    def upstream_error(self, instance: str, kind: str) -> None: ...

    def log_exception(self, message: str, **context: Any) -> None: ...


class AttemptEnds:
    def __init__(self, *, store: JobStore, events: JobEvents, telemetry: Telemetry, execution: JobExecution,
                 max_attempts: int) -> None:
        self.store = store
        self.events = events
        self.telemetry = telemetry
        self.execution = execution
        self.max_attempts = max_attempts
        # job id -> (server it just failed on, when): its retry should go elsewhere if it can.
        self._retry_from: dict[str, tuple[str, float]] = {}

    def failed_on(self, job_id: str) -> str | None:
        """The server `job_id`'s last attempt failed on, if that was lately (once: the retry is placed)."""
        now = time.monotonic()
        for other, (_, at) in list(self._retry_from.items()):
            if now - at > RETRY_AVOID_S:
                del self._retry_from[other]
        return self._retry_from.pop(job_id, (None, 0.0))[0]

    async def retry_or_fail(self, job: Job, instance: Instance, exc: UpstreamUnavailable) -> None:
        error = exc.as_job_error(instance=instance.name, attempt=job.attempt)
        ran = job.attempt - sum(1 for h in job.history if (h.get("error") or {}).get("code") == NOT_PLACED)
        if ran < self.max_attempts:
            if await self.store.requeue(job.id, job.attempt, error):
                self._retry_from[job.id] = (instance.name, time.monotonic())
                self.telemetry.job_retried(job, instance.name, error)
                await self.events.publish_changed(job.id)
            else:
                self.telemetry.job_released(job, instance.name)
            return
        error["message"] = f"no ComfyUI server could run the job in {ran} attempts; last: {exc.message}"
        await self.failed(job, instance, error)

    async def completed(self, job: Job, instance: Instance, outcome: Outcome) -> bool:
        job.result_meta = outcome.meta
        finished = await self.store.complete(job.id, job.attempt, outcome.blob, outcome.meta, outcome.outputs,
                                             outcome.expires_at)
        if finished is not None:
            self.telemetry.job_finished(job, instance.name, True, None)
            await self.events.publish_finished(job.id, finished)  # a sync request here answers without a read
            return True
        # this attempt was abandoned (lease lost or job deleted): its result is not the job's
        self.telemetry.job_released(job, instance.name)
        await self.execution.discard(outcome)
        return False

    async def failed(self, job: Job, instance: Instance | None, error: dict[str, Any]) -> None:
        if await self.store.fail(job.id, job.attempt, error):
            self.telemetry.job_finished(job, instance.name if instance else None, False, error)
            await self.events.publish_finished(job.id)
        elif instance is not None:  # abandoned attempt: it only frees its server in the figures
            self.telemetry.job_released(job, instance.name)
