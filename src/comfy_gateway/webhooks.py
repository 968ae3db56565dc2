"""Webhooks: when a job with a `callback_url` finishes, its status is POSTed there.

Delivered by the replica that finished the job, in the background, with a few retries; a receiver
that stays down only costs log lines. The body is the job's status (as GET /api/jobs/{id}/status)
plus `result_url`, so the receiver fetches the image when it wants it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .background import TaskOwner
from .errors import InvalidInput
from .jobs.model import Job
from .jobs.store import JobStore
from .observability.tracing import Tracing

RETRY_DELAYS_S = (1.0, 3.0, 9.0)


def check_callback_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
        raise InvalidInput("callback_url must be an absolute http(s) URL", parameter="callback_url")
    return url


class WebhookSender:
    def __init__(self, session: aiohttp.ClientSession, store: JobStore, tasks: TaskOwner, log: Any, *,
                 body: Callable[[Job], dict[str, Any]], tracing: Tracing | None = None) -> None:
        """`body` renders a job as the API shows its status (the API layer hands it in)."""
        self._session = session
        self._tracing = tracing or Tracing.off()
        self._store = store
        self._tasks = tasks
        self._log = log
        self._body = body

    def job_finished(self, job: Job, ok: bool) -> None:
        url = job.params.get("callback_url")
        if url and not self._tasks.closed:
            self._tasks.spawn(self.deliver(url, job.id), f"webhook-{job.id}")

    async def deliver(self, url: str, job_id: str) -> bool:
        job = await self._store.get(job_id)
        if job is None:
            return False
        body = self._body(job)
        with self._tracing.job_span(job, "webhook.deliver", url=url) as span:
            delivered = await self._post(url, job_id, body)
            span.set(delivered=delivered)
        return delivered

    async def _post(self, url: str, job_id: str, body: dict[str, Any]) -> bool:
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S), start=1):
            await asyncio.sleep(delay)
            try:
                async with self._session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    if resp.status < 300:
                        return True
                    problem = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = str(exc) or type(exc).__name__
            self._log.warning("Webhook delivery failed", jobId=job_id, url=url, attempt=attempt, error=problem)
        return False
