"""Reading a job's outputs, for every API surface (v1 and v2 alike), through `JobService`:

    job = await service.readable_outputs(job_id, caller)  # 404 unknown, 409 not finished, 410 expired
    for index, output in enumerate(job.outputs):    # Output records (jobs/outputs.py), in /history order
        url = await service.outputs.direct_url(job, output)
    output = service.outputs.pick(job, n)           # 404 when there is no output n
    chunks = await service.outputs.read(job, output, start, end)

`direct_url` is a presigned URL of the result store (RESULT_STORE=s3), valid RESULT_URL_TTL but
never past the job's `expires_at`, or None when the bytes are served by the gateway only. A failed
job is readable and has no outputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

from .errors import JobNotFinished, NotFound, ResultExpired
from .images import strip_png_text
from .jobs.blobs import BlobStore, PresigningStore
from .jobs.model import Job
from .jobs.outputs import Output, is_output_key
from .observability.timestamps import iso


def result_from_store(key: str, data: bytes) -> bytes:
    """A job's result from the bytes under its key. A PNG result stored as the output it is (one write
    per job, not two) has the workflow in its text chunks, as the server sent it: they go."""
    return strip_png_text(data) if is_output_key(key) else data


def result_expired(job: Job) -> ResultExpired:
    expired_at = None if job.expires_at is None else iso(job.expires_at)
    return ResultExpired(f"the results of job {job.id} expired and were deleted", job_id=job.id,
                         expired_at=expired_at)


class JobOutputs:
    def __init__(self, results: BlobStore, *, url_ttl_s: int, redirect: bool) -> None:
        self.results = results
        self.url_ttl_s = url_ttl_s
        self.redirect = redirect  # downloads go to the direct URL when there is one

    @staticmethod
    def check_readable(job: Job) -> None:
        """409 while the job runs or waits, 410 once its results expired."""
        if not job.state.finished:
            raise JobNotFinished(f"job {job.id} is {job.state.value}; its outputs are not ready",
                                 job_id=job.id, status=job.state.value, progress_percentage=int(job.progress))
        if job.expired():
            raise result_expired(job)

    @staticmethod
    def pick(job: Job, index: int) -> Output:
        if not 0 <= index < len(job.outputs):
            raise NotFound(f"job {job.id} has no output {index} (it has {len(job.outputs)})", job_id=job.id)
        return job.outputs[index]

    async def direct_url(self, job: Job, output: Output) -> str | None:
        if not isinstance(self.results, PresigningStore):
            return None
        ttl = self.url_ttl_s
        if job.expires_at is not None:
            ttl = max(1, min(ttl, math.ceil(job.expires_at - time.time())))
        return await self.results.presign(output.key, ttl, output.content_type, output.filename)

    async def read(self, job: Job, output: Output, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes `[start, end)` of one output, in chunks (410 if they were deleted meanwhile)."""
        try:
            return await self.results.read(output.key, start, end)
        except KeyError:
            raise result_expired(job) from None
