"""Periodic housekeeping: finished jobs past retention go (with their blobs and output files), results
past RESULT_TTL are deleted (the job answers 410 from then on), pending jobs past the queue deadline
fail, and processing jobs whose owner stopped renewing their lease are adopted."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from ..errors import QueueTimeout
from ..jobs.blobs import BlobStore
from ..jobs.model import Job, JobState
from ..jobs.store import JobStore
from .dispatcher import Dispatcher
from .execution import input_key, result_key


def blob_keys(job: Job) -> list[str]:
    keys = [job.input_blob or input_key(job.id)]
    if job.result_blob:
        keys.append(job.result_blob)
    keys += [result_key(job.id, n) for n in range(1, job.attempt + 1) if result_key(job.id, n) != job.result_blob]
    return keys


class Janitor:
    def __init__(self, *, store: JobStore, blobs: BlobStore, dispatcher: Dispatcher, retention_s: float,
                 queue_timeout_s: float, interval_s: float, log: Any, results: BlobStore | None = None,
                 result_ttl_s: float | None = None) -> None:
        self.store = store
        self.blobs = blobs
        self.results = results or blobs  # where output files are
        self.result_ttl_s = result_ttl_s
        self._expired_up_to = 0.0  # jobs finished before this had their results deleted (this process)
        self.dispatcher = dispatcher
        self.retention_s = retention_s
        self.queue_timeout_s = queue_timeout_s
        self.interval_s = interval_s
        self.log = log
        self._next_deadline = time.time() + queue_timeout_s

    async def remove(self, job: Job) -> None:
        await self.blobs.delete(*blob_keys(job))
        await self.results.delete(*(output.key for output in job.outputs))

    async def expire_results(self) -> int:
        """Delete the result and outputs of jobs past RESULT_TTL; their rows stay (and answer 410)."""
        if self.result_ttl_s is None or self.result_ttl_s >= self.retention_s:
            return 0  # the rows go at the same time, blobs with them
        cutoff = time.time() - self.result_ttl_s
        expired = 0
        while batch := await self.store.finished_before(cutoff, limit=500, since=self._expired_up_to):
            for job in batch:
                await self.remove(job)
            expired += len(batch)
            # `since` is inclusive: start just after the newest one done
            self._expired_up_to = math.nextafter(max(job.finished_at or 0.0 for job in batch), math.inf)
            if len(batch) < 500:
                break
        return expired

    async def cleanup_finished(self, older_than_s: float | None = None) -> int:
        cutoff = time.time() - (self.retention_s if older_than_s is None else older_than_s)
        removed = 0
        while batch := await self.store.finished_before(cutoff, limit=500):
            for job in batch:
                if await self.store.delete(job.id) is not None:
                    await self.remove(job)
                    removed += 1
            if len(batch) < 500:
                break
        return removed

    async def expire_pending(self) -> int:
        now = time.time()
        cutoff = now - self.queue_timeout_s
        expired = 0
        next_deadline = now + self.queue_timeout_s  # a job submitted from now on expires no sooner
        for job in await self.store.unfinished():
            if job.state is JobState.PENDING and job.created_at >= cutoff:
                next_deadline = min(next_deadline, job.created_at + self.queue_timeout_s)
            if job.state is JobState.PENDING and job.created_at < cutoff:
                reason = QueueTimeout(f"no ComfyUI server took the job within the queue deadline "
                                      f"({self.queue_timeout_s:g} s)").as_job_error()
                if await self.store.fail(job.id, None, reason):
                    self.dispatcher.telemetry.job_finished(job, None, False, reason)
                    await self.dispatcher.events.publish_finished(job.id)
                    expired += 1
        self._next_deadline = next_deadline
        return expired

    async def sweep(self) -> dict[str, int]:
        adopted = await self.dispatcher.adopt_expired()
        removed = await self.cleanup_finished()
        results = await self.expire_results()
        expired = await self.expire_pending()
        if removed or expired or adopted or results:
            self.log.info("Housekeeping", removedJobs=removed, expiredJobs=expired, adoptedJobs=adopted,
                          expiredResults=results)
        return {"removed": removed, "expired": expired, "adopted": adopted, "expired_results": results}

    def next_sweep_in(self) -> float:
        """Seconds until the next sweep: the usual interval, or sooner when a pending job's queue
        deadline falls before it (so QUEUE_TIMEOUT is kept to within a few tens of ms)."""
        until_deadline = self._next_deadline - time.time() + 0.01
        return max(0.05, min(self.interval_s, until_deadline))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.next_sweep_in())
            await self.sweep()
