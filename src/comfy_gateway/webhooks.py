"""Webhooks: when a job with a `callback_url` finishes, its status is POSTed there.

Delivered by the replica that finished the job, in the background (never on a request's path),
retried with growing delays; each attempt is recorded in the job (`webhook_deliveries` of its
info). The body is the job's status (as GET /api/jobs/{id}/status) plus `result_url`, signed as
Standard Webhooks when WEBHOOK_SECRET is set. Deliveries go through their own HTTP session whose
resolver refuses what the destination policy refuses; redirects are never followed.

A delivery cut short by a shutdown is taken up again when a gateway starts (`resume`): the
recorded attempts say how far it got, and the next attempt keeps the message's webhook-id.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .access.destinations import DestinationPolicy, GuardedResolver
from .access.signing import WebhookSigner, new_message_id
from .background import TaskOwner
from .errors import DestinationRefused
from .jobs.model import Job
from .jobs.store import JobStore
from .observability.timestamps import iso
from .observability.tracing import Tracing

RETRY_DELAYS_S = (1.0, 3.0, 9.0)
RESUME_WINDOW_S = 3600.0  # deliveries of jobs that finished longer ago are not taken up again
_RESUME_PAGE = 500


class WebhookSender:
    def __init__(self, store: JobStore, tasks: TaskOwner, log: Any, *, body: Callable[[Job], dict[str, Any]],
                 policy: DestinationPolicy, signer: WebhookSigner | None, timeout_s: float,
                 retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S, tracing: Tracing | None = None) -> None:
        """`body` renders a job as the API shows its status (the API layer hands it in)."""
        self._body = body
        self._tracing = tracing or Tracing.off()
        self._store = store
        self._tasks = tasks
        self._log = log
        self._policy = policy
        self._signer = signer
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry_delays_s = retry_delays_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookSender:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self._policy), limit=32)
        self._session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",),
                                              headers={"User-Agent": "comfy-gateway-webhooks"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def job_finished(self, job: Job, ok: bool) -> None:
        url = job.params.get("callback_url")
        if url and not self._tasks.closed:
            self._tasks.spawn(self.deliver(url, job.id), f"webhook-{job.id}")

    async def resume(self) -> int:
        """Take up the deliveries that neither succeeded nor gave up, of jobs that finished within
        RESUME_WINDOW_S. Returns how many. (With several replicas, each one that starts takes them
        up: a receiver may then see a message twice, under the same webhook-id.)"""
        resumed, since, now = 0, time.time() - RESUME_WINDOW_S, time.time()
        while True:
            jobs = await self._store.finished_before(now, _RESUME_PAGE, since)
            for job in jobs:
                url = job.params.get("callback_url")
                unfinished = _unfinished_delivery(job.webhook_deliveries, len(self._retry_delays_s) + 1)
                if url and unfinished is not None:
                    first_attempt, message_id = unfinished
                    self._tasks.spawn(self.deliver(url, job.id, first_attempt=first_attempt, message_id=message_id),
                                      f"webhook-{job.id}")
                    resumed += 1
            if len(jobs) < _RESUME_PAGE or jobs[-1].finished_at is None:
                return resumed
            since = jobs[-1].finished_at  # the next page starts there (its jobs are seen twice at most)

    async def deliver(self, url: str, job_id: str, *, first_attempt: int = 1, message_id: str | None = None) -> bool:
        job = await self._store.get(job_id)
        if job is None:
            return False
        with self._tracing.job_span(job, "webhook.deliver", host=urlsplit(url).hostname) as span:
            delivered = await self._deliver(url, job, first_attempt, message_id or new_message_id())
            span.set(delivered=delivered)
        return delivered

    async def _deliver(self, url: str, job: Job, first_attempt: int, message_id: str) -> bool:
        """From attempt `first_attempt` on, all under `message_id` (receivers deduplicate on it)."""
        payload = json.dumps(self._body(job)).encode()
        delays = (0.0, *self._retry_delays_s)
        for attempt, delay in enumerate(delays[first_attempt - 1:], start=first_attempt):
            await asyncio.sleep(delay)
            outcome = await self._attempt(url, payload, message_id)
            await self._store.add_webhook_attempt(job.id, {"attempt": attempt, "at": iso(time.time()),
                                                           "webhook_id": message_id, **outcome})
            if outcome["ok"]:
                return True
            self._log.warning("Webhook delivery failed", jobId=job.id, host=urlsplit(url).hostname,
                              attempt=attempt, error=outcome["error"])
            if outcome.get("final"):
                break
        return False

    async def _attempt(self, url: str, payload: bytes, message_id: str) -> dict[str, Any]:
        assert self._session is not None, "WebhookSender used outside its context"
        headers = {"Content-Type": "application/json"}
        if self._signer is not None:
            headers.update(self._signer.headers(message_id, payload))
        try:
            await self._policy.check(url)  # again: a literal address never reaches the resolver
            async with self._session.post(url, data=payload, headers=headers, allow_redirects=False,
                                          timeout=self._timeout) as resp:
                if resp.status < 300:
                    return {"ok": True, "status": resp.status}
                moved = " (redirects are not followed)" if resp.status < 400 else ""
                return {"ok": False, "status": resp.status, "error": f"HTTP {resp.status}{moved}"}
        except DestinationRefused as exc:
            return {"ok": False, "error": exc.message, "final": True}
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return {"ok": False, "error": str(exc) or type(exc).__name__}


def _unfinished_delivery(attempts: list[dict[str, Any]], budget: int) -> tuple[int, str | None] | None:
    """The next attempt and the webhook-id of a delivery still owed, or None when it is over
    (delivered, refused for good, or out of attempts)."""
    if any(a.get("ok") or a.get("final") for a in attempts) or len(attempts) >= budget:
        return None
    message_id = attempts[-1].get("webhook_id") if attempts else None
    return len(attempts) + 1, message_id if isinstance(message_id, str) else None
