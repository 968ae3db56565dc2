"""The newest pending jobs, as an estimate places them: one store read serves many estimates.

An estimate places the pending jobs ahead of a job as the dispatcher would (Placement.estimate).
Reading them from the store for every 202 cost more than the rest of the submission while the
queue was long. So the sample is read at most every FRESH_S, and what this replica does meanwhile
is applied to it: a job it queues is added, a job its dispatcher claims is taken out, a job whose
finish it heard (withdrawn, canceled, deleted) is left out. What other replicas do, and a job
queued again after a failed attempt, shows at the next read.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..jobs.model import Job, JobState
from ..jobs.store import JobFilter, JobStore

SAMPLE_SIZE = 50  # pending jobs ahead that an estimate places one by one
FRESH_S = 0.25  # how long a read of the store stands in for the next ones


class PendingSample:
    def __init__(self, store: JobStore, finished_lately: Callable[[str], bool], *,
                 size: int = SAMPLE_SIZE, fresh_s: float = FRESH_S) -> None:
        self._store = store
        self._finished_lately = finished_lately
        self._size = size
        self._fresh_s = fresh_s
        self._read_at: float | None = None
        self._count = 0  # pending jobs in all, the sampled ones among them
        self._jobs: dict[str, Job] = {}  # the newest pending, oldest first

    async def read(self) -> tuple[list[Job], int]:
        """The sample, oldest first, and how many pending jobs are older than it (not read)."""
        now = time.monotonic()
        if self._read_at is None or now - self._read_at > self._fresh_s:
            await self._refresh(now)
        gone = [job_id for job_id in self._jobs if self._finished_lately(job_id)]
        for job_id in gone:
            self._take_out(job_id)
        return list(self._jobs.values()), max(0, self._count - len(self._jobs))

    async def _refresh(self, now: float) -> None:
        count = await self._store.pending_count()
        jobs = await self._store.list(JobFilter(state=JobState.PENDING, limit=self._size)) if count else []
        self._count, self._read_at = count, now
        self._jobs = {job.id: job for job in sorted(jobs, key=lambda j: (j.created_at, j.id))}

    def added(self, job: Job) -> None:
        """`job` was queued here."""
        if self._read_at is None:
            return
        self._jobs[job.id] = job
        self._count += 1
        if len(self._jobs) > self._size:  # the oldest is still pending, only no longer sampled
            del self._jobs[next(iter(self._jobs))]

    def claimed(self, job_id: str) -> None:
        """The dispatcher here took `job_id` out of the queue."""
        if self._read_at is not None:
            self._take_out(job_id)

    def _take_out(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self._count = max(0, self._count - 1)
