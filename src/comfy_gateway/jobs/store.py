"""The JobStore contract. SQLite (embedded, default) and Redis (shared by replicas) implement it.

Every state-changing call after `claim` is fenced by the attempt number: a worker whose lease was
taken over (a crash, a slow network) holds an old attempt, and its late writes are refused (False).
No SQL or Redis detail belongs here; `tests/contract/` holds the one suite every store must pass.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .model import Job, JobState
from .outputs import Output


@dataclass(frozen=True)
class JobFilter:
    state: JobState | None = None
    type: str | None = None
    instance: str | None = None
    limit: int = 100
    offset: int = 0
    # Keyset paging: only jobs listed after this (created_at, id), the last of the page before, so
    # jobs created meanwhile do not shift the pages.
    before: tuple[float, str] | None = None


@dataclass
class StoreCounts:
    total: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)
    by_instance: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Claimed:
    """What `claim_next` took, and whether any job (of any tenant or type) is still pending after it."""

    job: Job | None
    more_pending: bool


@dataclass
class QueueStats:
    """What autoscaling looks at: the unfinished jobs by workflow, and the oldest one waiting."""

    pending_by_type: dict[str, int] = field(default_factory=dict)
    processing_by_type: dict[str, int] = field(default_factory=dict)
    oldest_pending_created_at: float | None = None


class JobStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, job: Job) -> None:
        """Insert a new pending job; an id that exists already raises ValueError."""

    async def create_once(self, job: Job, key: str, ttl_seconds: float) -> tuple[Job, bool]:
        """Create `job` unless the idempotency `key` already names a job that still exists.

        Atomic: of two calls with one key, one creates and the other gets that job back.
        Returns (the job the key names, whether it was created now). A key lives `ttl_seconds`."""

    async def claim_key(self, key: str, ttl_seconds: float) -> bool:
        """Take an idempotency `key` that names no job (an asset upload's): True once, until it
        expires or is released; atomic across every user of the store."""

    async def release_key(self, key: str) -> None:
        """Give back a key taken by `claim_key` (its request certainly did nothing)."""

    async def get(self, job_id: str) -> Job | None: ...

    async def claim(
        self, owner: str, lease_seconds: float, instance: str | None = None,
        caps: Mapping[str, int] | None = None, types: Collection[str] | None = None,
    ) -> Job | None:
        """Atomically take the next pending job in fair-share order: processing, attempt + 1, leased to `owner`.

        Fair share: of each tenant only its oldest pending job is a candidate; the candidate of the
        highest `priority` wins, among equals the tenant served longest ago (never served: first),
        then the oldest job. A tenant with `caps[tenant]` processing jobs or more is passed over, so
        its limit holds for every worker of the store. `instance` is recorded as the server the
        attempt will run on. With `types`, only jobs of these types are candidates (those the free
        servers should run now: each tenant's oldest job of one of them); None: any type."""

    async def claim_next(
        self, owner: str, lease_seconds: float, caps: Mapping[str, int] | None = None,
        types: Collection[str] | None = None,
    ) -> Claimed:
        """`claim`, answering in the same step whether the queue holds anything more: a dispatcher
        told it is empty need not look again until something is queued."""

    async def claim_job(
        self, job_id: str, owner: str, lease_seconds: float, instance: str | None = None
    ) -> Job | None:
        """Like `claim`, for one given pending job (None if it is not pending any more)."""

    async def record_prompt(self, job_id: str, attempt: int, prompt_id: str) -> bool:
        """Remember the ComfyUI prompt id of this attempt (set before the prompt is posted)."""

    async def record_placement(self, job_id: str, attempt: int, instance: str, placement: dict[str, Any],
                               prompt_id: str | None = None) -> bool:
        """The server this attempt runs on and why (`Job.placement`), chosen after the claim; with
        `prompt_id`, the attempt's prompt id too, in the same write."""

    async def set_progress(self, job_id: str, attempt: int, progress: float) -> bool: ...

    async def mark_canceling(self, job_id: str, attempt: int) -> bool:
        """Remember (`Job.canceling_at`) that a cancel of this attempt was asked while it runs."""

    async def renew_lease(self, job_id: str, attempt: int, owner: str, lease_seconds: float) -> bool: ...

    async def complete(
        self, job_id: str, attempt: int, result_blob: str, result_meta: dict[str, Any],
        outputs: Sequence[Output] = (), expires_at: float | None = None,
    ) -> Job | None:
        """processing -> completed, only for the current attempt; `outputs` and `expires_at` are kept.
        The job as it is now stored, or None when the attempt no longer owns it (nothing changed)."""

    async def fail(self, job_id: str, attempt: int | None, error: dict[str, Any]) -> bool:
        """-> failed, only for the current attempt of a processing job; `attempt=None` fails a job
        only while it is still pending (queue deadline, a sync request withdrawn), never a running one."""

    async def requeue(self, job_id: str, attempt: int, error: dict[str, Any] | None = None) -> bool:
        """processing -> pending for a retry; the failed attempt is kept in `history`."""

    async def expired_leases(self, now: float) -> Sequence[Job]:
        """Processing jobs whose lease ran out (their worker died)."""

    async def expire_lease(self, job_id: str, attempt: int) -> bool:
        """End a processing job's lease now: its worker is known to be gone (embedded store restart)."""

    async def take_over(self, job_id: str, attempt: int, owner: str, lease_seconds: float) -> Job | None:
        """Adopt an expired processing job: same attempt becomes attempt + 1 under `owner`.

        The instance and prompt id are kept, so the new owner can re-attach to the prompt."""

    async def list(self, flt: JobFilter) -> Sequence[Job]:
        """Newest first: by created_at, then id, both descending."""

    async def counts(self) -> StoreCounts: ...

    async def pending_count(self, tenant: str | None = None) -> int:
        """Pending jobs, of the whole store or of one tenant."""

    async def queue_position(self, job_id: str) -> int | None:
        """1 + the pending jobs ahead of this one in creation order (created_at, then id); None when
        it is not pending. The claim's fair share may take it sooner or later than that."""

    async def finished_since(self, since: float) -> tuple[int, float | None]:
        """How many jobs finished at `since` or later, and when the first of them did (throughput)."""

    async def add_webhook_attempt(self, job_id: str, attempt: dict[str, Any]) -> bool:
        """Append one webhook delivery attempt to the job's `webhook_deliveries` (False: no such job)."""

    async def delete(self, job_id: str) -> Job | None:
        """Remove a job; returns what was removed so the caller can drop its blobs."""

    async def finished_before(self, cutoff: float, limit: int = 500, since: float = 0.0) -> Sequence[Job]:
        """Completed or failed jobs whose `finished_at` is older than `cutoff` (and not before `since`),
        oldest first."""

    async def unfinished(self) -> Sequence[Job]:
        """Every pending or processing job (start-up recovery)."""

    async def queue_stats(self) -> QueueStats:
        """Pending and processing jobs counted by type (types with none left out), oldest pending's age."""
