"""JobService: the one door to jobs for every API surface.

Submit, wait (async, sync, a stream of updates), withdraw, read, list, and cancel (`delete` stops a
running job first). Routers call this and never reach into the store, the blobs, the pool or the
dispatcher; the composition root (gateway.py) builds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from .access import DestinationPolicy, Principal, Quotas
from .comfyui.instance import InstancePool
from .dispatch.dispatcher import Dispatcher, interrupt_prompt
from .dispatch.execution import input_key, prompt_id_for
from .dispatch.janitor import Janitor
from .dispatch.placement import Placement
from .dispatch.slots import SlotLedger
from .errors import JobNotFound, NotFound, ServiceUnavailable, StorageError, Withdrawn
from .images import ImageInfo
from .job_outputs import JobOutputs, result_expired, result_from_store
from .jobs.blobs import BlobStore
from .jobs.events import JobEvents
from .jobs.model import Job, JobState, new_job_id
from .jobs.storage_faults import StorageFaults
from .jobs.store import JobFilter, JobStore, StoreCounts
from .observability.job_metrics import JobMetrics
from .observability.tracing import Tracing
from .settings import Settings
from .workflows.registry import Workflow, WorkflowRegistry

STRANDED_GRACE_S = 3.0
# Updates are pushed by the job's events; this re-read only covers a notification lost on the way.
UPDATE_RECHECK_S = 15.0
SYNC_RECHECK_S = 5.0  # a sync wait reads its job at least this often: a lost event costs no more


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """True if `event` is set within `seconds`. The caller's own cancellation propagates."""
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    except TimeoutError:
        return False
    return True


class Admission:
    """Whether new jobs are taken: yes from start-up until the drain begins (SIGTERM)."""

    def __init__(self, pool: InstancePool, dispatcher: Dispatcher, log: Any,
                 storage: StorageFaults | None = None) -> None:
        self._pool = pool
        self._dispatcher = dispatcher
        self._log = log
        self.storage = storage or StorageFaults()
        self.open = False
        self.stopped = asyncio.Event()  # the drain is over: what still runs is left for the restart
        self._sync_waits: set[asyncio.Event] = set()  # woken by `stop`, so that each waits on one event

    def stop(self) -> None:
        """The drain is over: sync requests still waiting are answered now."""
        self.stopped.set()
        for event in self._sync_waits:
            event.set()

    @contextlib.contextmanager
    def sync_wait(self, event: asyncio.Event) -> Iterator[None]:
        """While in the block, `stop` sets `event` too."""
        self._sync_waits.add(event)
        try:
            yield
        finally:
            self._sync_waits.discard(event)

    def begin_drain(self) -> None:
        if self.open:
            self.open = False
            self._dispatcher.draining = True
            self._log.info("Draining: no new jobs are admitted")

    @property
    def draining(self) -> bool:
        """Shutting down (or not started yet): answers tell clients to go elsewhere."""
        return not self.open

    def check(self, sync: bool) -> None:
        if not self.open:
            raise ServiceUnavailable("the gateway is shutting down; retry on another replica", retry_after=5)
        if self.storage.blocking is not None:
            raise StorageError(f"{self.storage.blocking}; no new jobs are admitted", retry_after=30)
        if sync and not self._pool.available():
            retry = min((i.breaker.retry_in for i in self._pool), default=5.0)
            raise ServiceUnavailable("no healthy ComfyUI server is available right now",
                                     retry_after=max(1, round(retry)))

    def stranded(self) -> bool:
        """A pending job cannot start now: the gateway drains, or no server takes work."""
        return not self.open or not self._pool.available()


class JobService:
    def __init__(
        self, *, settings: Settings, store: JobStore, blobs: BlobStore, events: JobEvents, pool: InstancePool,
        dispatcher: Dispatcher, janitor: Janitor, registry: WorkflowRegistry, metrics: JobMetrics,
        admission: Admission, quotas: Quotas, destinations: DestinationPolicy, outputs: JobOutputs,
        placement: Placement, slots: SlotLedger, tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self._placement = placement
        self._slots = slots
        self._store = store
        self._blobs = blobs
        self._events = events
        self._pool = pool
        self._dispatcher = dispatcher
        self._janitor = janitor
        self._registry = registry
        self._metrics = metrics
        self.admission = admission
        self._quotas = quotas
        self._destinations = destinations
        self.outputs = outputs  # every output file of a job: see readable_outputs
        self._tracing = tracing or Tracing.off()

    # --- workflows ---

    def workflow(self, name: str) -> Workflow:
        workflow = self._registry.get(name)
        if workflow is None:
            raise NotFound(f"no workflow named {name!r}", available=self._registry.names())
        return workflow

    def workflows(self) -> list[Workflow]:
        return [self.workflow(name) for name in self._registry.names()]

    # --- admitting and submitting ---

    def check_admission(self, sync: bool) -> None:
        self.admission.check(sync)

    def check_runnable(self, job_type: str, params: dict[str, Any] | None) -> None:
        """422 (NoCapableServer) when no configured server has what the job needs; a server whose
        capabilities were not read yet counts as able to run anything."""
        self._placement.check_runnable(job_type, params)

    async def check_rate(self, caller: Principal) -> None:
        """One request of `caller` against its requests_per_minute (429 past it)."""
        await self._quotas.check_rate(caller)

    async def checked_callback_url(self, url: str) -> str:
        """`url` if webhooks may be sent there (422 if not); resolves its name, connects to nothing."""
        return await self._destinations.check(url)

    async def submit(self, job_type: str, data: bytes, info: ImageInfo, params: dict[str, Any],
                     owner: Principal, idempotency_key: str | None = None) -> tuple[Job, bool]:
        """The job for this request, and whether it is new (False: the idempotency key named one).

        The job is `owner`'s: its tenant and priority; past a queue bound, 429; 422 when no
        configured server can run it."""
        self.check_runnable(job_type, params.get("workflow"))
        await self._quotas.check_queue(owner)
        job = Job(id=new_job_id(), type=job_type, params=params, input_meta=info.as_meta(),
                  tenant=owner.name, priority=owner.priority)
        job.input_blob = input_key(job.id)
        await self._blobs.put(job.input_blob, data)
        try:
            named, created = await self._enqueue(job, owner, idempotency_key)
        except BaseException:
            await self._blobs.delete(job.input_blob)
            raise
        if not created:
            await self._blobs.delete(job.input_blob)
        return named, created

    async def submit_job(self, job: Job, owner: Principal, idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Queue `job` (its blobs stored already) as `owner`'s, unless `owner`'s idempotency key names
        a job: then that job, and False. Past a queue bound, 429."""
        await self._quotas.check_queue(owner)
        job.tenant, job.priority = owner.name, owner.priority
        return await self._enqueue(job, owner, idempotency_key)

    async def claim_key(self, key: str) -> bool:
        """Take an idempotency key that names no job (an asset upload's) for IDEMPOTENCY_TTL."""
        return await self._store.claim_key(key, self.settings.idempotency_ttl / 1000)

    async def release_key(self, key: str) -> None:
        await self._store.release_key(key)

    async def _enqueue(self, job: Job, owner: Principal, idempotency_key: str | None) -> tuple[Job, bool]:
        """The key is claimed in the same write that creates the job, so a retry never makes two."""
        with self._tracing.submitting(job):  # the job's trace context is written with it
            if idempotency_key is None:
                await self._store.create(job)
            else:
                # Keys are the tenant's own: another tenant's same key names another job.
                named, created = await self._store.create_once(job, f"{owner.name}/{idempotency_key}",
                                                               self.settings.idempotency_ttl / 1000)
                if not created:
                    return named, False
        self._dispatcher.pending.added(job)
        self._dispatcher.notify()
        await self._events.announce_work()
        return job, True

    # --- reading ---

    async def get(self, job_id: str, viewer: Principal) -> Job:
        """The job, if `viewer` may see it: its own tenant's, or any for an admin. Else 404, as unknown."""
        return viewer.check_sees(await self._job(job_id))

    async def _job(self, job_id: str) -> Job:
        job = await self._store.get(job_id)
        if job is None:
            raise JobNotFound("Job not found", job_id=job_id)
        return job

    async def _job_after_event(self, job_id: str) -> Job:
        """The job as its finish here left it, or else as stored."""
        return self._events.finished_job(job_id) or await self._job(job_id)

    async def list(self, flt: JobFilter) -> Sequence[Job]:
        return await self._store.list(flt)

    async def counts(self) -> StoreCounts:
        return await self._store.counts()

    async def pending_count(self) -> int:
        return await self._store.pending_count()

    async def queue_position(self, job: Job) -> int | None:
        """Where a pending job stands in this gateway's queue (see `JobStore.queue_position`)."""
        return await self._store.queue_position(job.id) if job.state is JobState.PENDING else None

    async def estimated_seconds(self, job: Job) -> float | None:
        """Seconds until `job` should be done (see `Placement.estimate`).

        Of the jobs pending ahead of a pending one, the newest are read (`PendingSample`); the older
        rest is only counted (reading a long queue on every request would cost more than it tells)."""
        if job.state.finished:
            return 0.0
        ahead: list[Job] = []
        unseen = 0
        if job.state is JobState.PENDING and not self._placement.placed_here(job.id):
            sample, unseen = await self._dispatcher.pending.read()
            ahead = [j for j in sample if (j.created_at, j.id) < (job.created_at, job.id)]
            if all(j.id != job.id for j in sample):  # the job itself is one of the unseen
                unseen = max(0, unseen - 1)
        return self._placement.estimate(job, ahead, unseen, await self._slots.usage())

    def average_seconds(self, job_type: str) -> float | None:
        """How long a job of this type took on average (successful jobs), if any ran yet."""
        return self._metrics.average_processing_seconds(job_type)

    async def result_bytes(self, job: Job) -> bytes:
        if job.result_blob is None:
            raise JobNotFound(f"job {job.id} has no result", job_id=job.id)
        if job.expired():
            raise result_expired(job)
        try:
            return result_from_store(job.result_blob, await self._blobs.get(job.result_blob))
        except KeyError:
            raise JobNotFound(f"the result of job {job.id} is no longer stored", job_id=job.id) from None

    async def input_bytes(self, job: Job) -> bytes:
        """The image the job was submitted with (kept until the job is cleaned up)."""
        try:
            return await self._blobs.get(job.input_blob or input_key(job.id))
        except KeyError:
            raise JobNotFound(f"the input of job {job.id} is no longer stored", job_id=job.id) from None

    async def readable_outputs(self, job_id: str, viewer: Principal) -> Job:
        """The job whose outputs (`job.outputs`, read through `self.outputs`) are asked for:
        404 unknown (or another tenant's), 409 not finished yet, 410 past its `expires_at`."""
        job = await self.get(job_id, viewer)
        self.outputs.check_readable(job)
        return job

    # --- waiting ---

    async def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job once it has finished (or as it is when `timeout_s` runs out)."""
        event = self._events.subscribe(job_id)
        try:
            job = await self._job(job_id)
            if not job.state.finished:
                await _set_within(event, timeout_s)
                job = await self._job_after_event(job_id)
            return job
        finally:
            self._events.unsubscribe(job_id, event)

    async def updates(self, job_id: str) -> AsyncIterator[Job]:
        """The job now and after each change (started, progress, retried) until it has finished;
        JobNotFound once it is deleted. Read from the store only when its events say it changed."""
        event = self._events.subscribe(job_id, changes=True)
        try:
            while True:
                event.clear()
                job = await self._job(job_id)
                yield job
                if job.state.finished:
                    return
                await _set_within(event, UPDATE_RECHECK_S)
        finally:
            self._events.unsubscribe(job_id, event)

    def sync_wait_limit(self) -> float:
        return self.settings.queue_timeout_s + self.settings.job_timeout_s + 5

    async def wait_sync(self, job_id: str, submitted: Job | None = None) -> Job:
        """A sync request's wait: until its job ends, unless the job cannot start.

        A job still pending while no server that can run it is available (for STRANDED_GRACE_S) or
        while the gateway drains is withdrawn (failed with a 503 reason), so the client does not hang
        and a later run cannot surprise it. Woken by the job's own event; once a second it looks at the pool, and
        reads the job only when the pool gives a reason to. `submitted`: the job as `submit` returned
        it, not read again unless it finished before the wait began."""
        deadline = time.monotonic() + self.sync_wait_limit()
        stranded_since: float | None = None
        event = self._events.subscribe(job_id)
        try:
            if submitted is None or self._events.finished_lately(job_id):  # it may have ended before the wait
                submitted = await self._job_after_event(job_id)
            job = submitted
            read_at = time.monotonic()
            while not job.state.finished and time.monotonic() < deadline and not self.admission.stopped.is_set():
                with self.admission.sync_wait(event):
                    woken = await _set_within(event, min(1.0, deadline - time.monotonic()))
                if self.admission.stopped.is_set():
                    break
                stranded = self.admission.stranded() or not self._placement.can_start(job)
                if woken or stranded or time.monotonic() - read_at > SYNC_RECHECK_S:
                    job, read_at = await self._job_after_event(job_id), time.monotonic()
                if job.state is not JobState.PENDING or not stranded:
                    stranded_since = None
                    continue
                stranded_since = stranded_since or time.monotonic()
                if self.admission.open and time.monotonic() - stranded_since < STRANDED_GRACE_S:
                    continue
                job = await self.withdraw(job_id)
            return job
        finally:
            self._events.unsubscribe(job_id, event)

    async def withdraw(self, job_id: str) -> Job:
        """Fail a job that is still pending, because it cannot start; a job that started meanwhile
        runs on (the store fails only pending jobs this way) and is returned as it is."""
        reason = ("the gateway is shutting down" if not self.admission.open
                  else "no healthy ComfyUI server is available")
        error = Withdrawn(f"{reason}; the request was withdrawn, retry later").as_job_error()
        if await self._store.fail(job_id, None, error):
            await self._events.publish_finished(job_id)
        return await self._job(job_id)

    # --- cancelling and removing ---

    async def cancel(self, job_id: str, viewer: Principal, error: dict[str, Any]) -> Job:
        """Stop the job wherever it is (taken out of the queue, or its prompt interrupted, here or on
        another replica) and fail it with `error`. A finished job stays as it is."""
        job = await self.get(job_id, viewer)
        if job.state is JobState.PROCESSING:
            if not await self._dispatcher.stop_job(job_id, "canceled"):
                await self._cancel_elsewhere(job)
            failed = await self._store.fail(job_id, job.attempt, error)  # fenced: a late result is refused
        else:
            failed = not job.state.finished and await self._store.fail(job_id, None, error)
        if failed:
            await self._events.publish_finished(job_id)
            return await self._job(job_id)
        latest = await self._job(job_id)
        return latest if latest.state.finished else await self.cancel(job_id, viewer, error)  # it moved on

    async def mark_canceling(self, job: Job) -> bool:
        """Record that a cancel of the running `job` was asked (False: it is not running that attempt
        any more); `cancel` then ends it."""
        if job.state is not JobState.PROCESSING or not await self._store.mark_canceling(job.id, job.attempt):
            return False
        job.canceling_at = time.time()
        await self._events.publish_changed(job.id)  # its streams show `canceling` at once
        return True

    async def delete(self, job_id: str, viewer: Principal) -> Job:
        """Stop the job if it runs (here or on another replica), then remove it and its blobs."""
        job = await self.get(job_id, viewer)
        if not await self._dispatcher.stop_job(job_id, "deleted") and job.state is JobState.PROCESSING:
            await self._cancel_elsewhere(job)  # running on another replica: stop its prompt from here
        removed = await self._store.delete(job_id)
        await self._janitor.remove(removed or job)
        await self._events.publish_finished(job_id)
        return removed or job

    async def _cancel_elsewhere(self, job: Job) -> None:
        instance = self._pool.get(job.instance) if job.instance else None
        if instance is not None:
            job.prompt_id = job.prompt_id or prompt_id_for(job.id, job.attempt)
            await interrupt_prompt(job, instance)

    async def cleanup_finished(self) -> int:
        """Remove finished jobs past the retention now, rather than at the next sweep."""
        return await self._janitor.cleanup_finished()
