"""The Dispatcher: event-driven scheduling of pending jobs onto servers, retries and deadlines.

It sleeps until something can change the answer to "can a job start now?": a new job, a freed slot,
a server that recovered. JOB_PROCESSING_INTERVAL is only a safety sweep, never the pace of work.
Which jobs to claim and where each goes is placement's answer (placement.py); the store only
hands out the next job, in its own order, of the types asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..background import TaskOwner, cancel_and_wait
from ..comfyui.health import HealthChecker
from ..comfyui.instance import Instance, InstancePool
from ..errors import (
    GatewayError,
    InternalError,
    JobTimedOut,
    StorageError,
    UpstreamUnavailable,
    WorkflowFailed,
    WorkflowRejected,
)
from ..jobs.blobs import BlobStore
from ..jobs.events import JobEvents
from ..jobs.model import Job
from ..jobs.store import JobStore
from ..observability.tracing import Tracing
from .endings import NOT_PLACED, AttemptEnds, Telemetry
from .execution import JobExecution, Outcome, ProgressReporter, prompt_id_for
from .pending_sample import PendingSample
from .placement import Choice, Placement, Plan
from .slots import SlotLedger

StopReason = Literal["deleted", "canceled", "shutdown", "lease_lost"]
UNPLACED_WAIT_S = 1.0  # how long a type waits after one of its jobs could not be placed
RECHECK_S = 10.0  # a refused graph reads the server's capabilities again when they are older than this


async def interrupt_prompt(job: Job, instance: Instance) -> None:
    """Stop the attempt's prompt on its server: taken out of the queue, or interrupted."""
    if job.prompt_id:
        with contextlib.suppress(GatewayError, TimeoutError):
            async with asyncio.timeout(5):
                await instance.client.cancel(job.prompt_id)


@dataclass
class RunningJob:
    job: Job
    instance: str
    task: asyncio.Task[None]
    stop_reason: StopReason | None = None
    started: float = field(default_factory=time.monotonic)


class Dispatcher:
    def __init__(
        self, *, store: JobStore, blobs: BlobStore, slots: SlotLedger, pool: InstancePool,
        execution: JobExecution, events: JobEvents, telemetry: Telemetry, health: HealthChecker | None,
        placement: Placement, owner: str, lease_s: float, job_timeout_s: float, max_attempts: int, sweep_s: float,
        tenant_caps: Callable[[], Mapping[str, int]] = dict,
        tracing: Tracing | None = None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.slots = slots
        self.pool = pool
        self.execution = execution
        self.events = events
        self.telemetry = telemetry
        self.health = health
        self.placement = placement
        self.owner = owner
        self.lease_s = lease_s
        self.job_timeout_s = job_timeout_s
        self.max_attempts = max_attempts
        self.sweep_s = sweep_s
        self.tenant_caps = tenant_caps  # tenant -> most jobs it may run at once (read per claim: keys reload)
        self.tracing = tracing or Tracing.off()
        self.ends = AttemptEnds(store=store, events=events, telemetry=telemetry, execution=execution,
                                max_attempts=max_attempts)
        self.pending = PendingSample(store, events.finished_lately)  # what estimates take to be queued
        self.running: dict[str, RunningJob] = {}
        # The server whose slot is held while a job is claimed for it: in use, but by no job yet.
        self.claiming: str | None = None
        self.draining = False
        self._jobs = TaskOwner(telemetry.log_exception)
        self._wake = asyncio.Event()
        # True while the last claim left no job pending and nothing may have queued one since: a
        # freed slot then needs no look at the queue. `_notified` tells a claim that ran while a
        # job was queued that its answer is already stale.
        self._queue_empty = False
        self._notified = 0
        self._unplaced: dict[str, float] = {}  # job type -> until when it is not claimed (see _place)

    # --- the loop ---

    def notify(self) -> None:
        """Something may have been queued (or a server become free): look at the queue."""
        self._queue_empty = False
        self._notified += 1
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self._fill()
            try:
                async with asyncio.timeout(self.sweep_s):
                    await self._wake.wait()
            except TimeoutError:
                self._queue_empty = False  # the sweep looks whatever the last claim said

    async def _fill(self) -> None:
        """Start jobs while there is a pending job and a free server that should run it now.

        A slot is taken before the claim, so that replicas woken by the same freed slot do not all
        claim a job for it; placement may then move the job to a better free server."""
        while not self.draining and not self._queue_empty:
            available = self.pool.available()
            if not available:
                return
            since = time.time()  # the job's queue wait ends, its placement begins
            usage = await self.slots.usage()
            now = time.monotonic()
            waiting = {job_type for job_type, until in self._unplaced.items() if until > now}
            plan = self.placement.plan(available, usage, waiting=waiting)
            if not plan.free or plan.types == frozenset():
                return
            reserved = await self.slots.acquire(list(plan.free))
            if reserved is None:
                return
            self.claiming = reserved
            try:
                if not await self._claim_and_place(plan, usage, reserved, since):
                    return
            finally:
                self.claiming = None

    async def _claim_and_place(self, plan: Plan, usage: dict[str, int], reserved: str, since: float) -> bool:
        notified = self._notified
        try:
            claimed = await self.store.claim_next(self.owner, self.lease_s, caps=self.tenant_caps(), types=plan.types)
        except BaseException:
            await self.slots.release(reserved)
            raise
        if not claimed.more_pending and notified == self._notified:
            self._queue_empty = True
        job = claimed.job
        if job is None:
            await self.slots.release(reserved)
            return False
        self.pending.claimed(job.id)
        return await self._place(job, plan, usage, reserved, since)

    async def _place(self, job: Job, plan: Plan, usage: dict[str, int], reserved: str, since: float) -> bool:
        """Start the claimed `job` on the best free server that can run it: the one whose slot is
        `reserved`, or a better one that still has a slot."""
        failed_on = self.ends.failed_on(job.id)
        for choice in self.placement.rank(job, plan.free, usage, avoid=failed_on):
            if choice.instance == reserved or await self.slots.acquire([choice.instance]) is not None:
                if choice.instance != reserved:
                    await self.slots.release(reserved)
                instance = self.pool.get(choice.instance)
                assert instance is not None
                self.placement.sent(job, choice)
                self.tracing.placed(job, choice.instance, candidates=sorted(plan.free), since=since,
                                    avoided=failed_on, details=choice.as_dict())
                self.start(job, instance, reattach=False, placement=choice)
                return True
        # Rare: the job's own parameters name a model that no free server has. It waits again, and
        # its type with it for a while (or until a slot is freed here); the attempt is not counted
        # against MAX_ATTEMPTS.
        await self.slots.release(reserved)
        await self.store.requeue(job.id, job.attempt, {"message": "no free server could take the job",
                                                       "code": NOT_PLACED})
        self._unplaced[job.type] = time.monotonic() + UNPLACED_WAIT_S
        self._queue_empty = False  # it is pending again
        return False

    def start(self, job: Job, instance: Instance, *, reattach: bool, placement: Choice | None = None) -> None:
        """Run `job` (already claimed, its slot on `instance` already taken) in its own task."""
        work = self.tracing.attempt(job, instance.name, self._run(job, instance, reattach, placement))
        task = self._jobs.spawn(work, name=f"job-{job.id}")
        self.running[job.id] = RunningJob(job, instance.name, task)

    # --- one attempt ---

    async def _run(self, job: Job, instance: Instance, reattach: bool, placement: Choice | None) -> None:
        self.telemetry.job_started(job, instance.name)
        progress = ProgressReporter(self.store, job, self.events.publish_changed)
        completed = False
        deadline = asyncio.timeout(self._time_left(job))
        try:
            try:
                async with deadline:
                    outcome = await self._attempt(job, instance, progress, reattach, placement)
            except TimeoutError:
                if not deadline.expired():  # some other timeout inside the attempt: not the job's deadline
                    raise
                await interrupt_prompt(job, instance)
                timed_out = JobTimedOut(
                    f"job exceeded JOB_TIMEOUT of {self.job_timeout_s:g} s; its prompt was interrupted")
                await self.ends.failed(job, instance, timed_out.as_job_error(instance=instance.name))
            else:
                instance.breaker.record_success()
                completed = await self.ends.completed(job, instance, outcome)
        except asyncio.CancelledError:
            reason = self.running[job.id].stop_reason if job.id in self.running else None
            self.telemetry.job_released(job, instance.name)
            if reason in ("deleted", "canceled"):
                await self._jobs.finish(interrupt_prompt(job, instance), f"interrupt-{job.id}")
            raise
        except UpstreamUnavailable as exc:
            self.telemetry.upstream_error(instance.name, exc.code)
            instance.breaker.record_failure(exc.message)
            if self.health is not None:
                self.health.kick()
            await self.ends.retry_or_fail(job, instance, exc)
        except (WorkflowRejected, WorkflowFailed) as exc:
            instance.breaker.record_success()  # the server works; the workflow or its input does not
            if isinstance(exc, WorkflowRejected) and await self._lacks_what_it_needs(job, instance):
                await self.ends.retry_or_fail(job, instance, UpstreamUnavailable(
                    f"{instance.name} lacks what the workflow needs ({exc.message})", instance=instance.name))
            else:
                await self.ends.failed(job, instance, exc.as_job_error(instance=instance.name))
        except StorageError:
            # The storage failed, not the job: it stays as the store has it (processing, its lease
            # left to run out) and is adopted again, re-attached to its prompt, once storage is back.
            self.telemetry.job_released(job, instance.name)
            self.telemetry.log_exception("storage failed during a job; it is taken up again once storage is back",
                                         job_id=job.id, instance=instance.name)
        except Exception:
            # The client is told a reference to this log line, never the exception's text.
            internal = InternalError()
            self.telemetry.log_exception("job crashed", job_id=job.id, instance=instance.name,
                                         reference=internal.reference)
            await self.ends.failed(job, instance, internal.as_job_error(instance=instance.name))
        finally:
            self.running.pop(job.id, None)
            self.placement.ended(job.id, instance.name, completed=completed)
            await progress.aclose()
            await self._jobs.finish(self._release(instance.name, requeued=not completed), f"release-{job.id}")

    async def _attempt(self, job: Job, instance: Instance, progress: ProgressReporter, reattach: bool,
                       placement: Choice | None) -> Outcome:
        if reattach:
            await self.events.publish_changed(job.id)  # processing now, on `instance`
            return await self.execution.reattach(job, instance, progress)
        # The placement is written while the input is uploaded; the prompt waits for it (so that
        # whoever adopts the job knows which server to follow), and so does anything else written
        # about the attempt: it is awaited here whatever the attempt's end.
        assert placement is not None  # a new attempt is always placed (`_place`)
        job.instance, job.placement = instance.name, placement.as_dict()  # before the attempt reads them
        job.prompt_id = prompt_id_for(job.id, job.attempt)
        placed = asyncio.create_task(self._placed(job, instance, job.placement), name=f"placed-{job.id}")
        try:
            outcome = await self.execution.run(job, instance, progress, placed=placed)
        finally:
            await asyncio.wait([placed])
            if not placed.cancelled():
                placed.exception()  # retrieved: when it matters, it was raised inside the attempt
        placed.result()
        return outcome

    async def _placed(self, job: Job, instance: Instance, placement: dict[str, Any]) -> None:
        """Record where a new attempt runs, with its prompt id, then announce it."""
        await self.store.record_placement(job.id, job.attempt, instance.name, placement, prompt_id=job.prompt_id)
        await self.events.publish_changed(job.id)  # processing now, on `instance`

    async def _lacks_what_it_needs(self, job: Job, instance: Instance) -> bool:
        """After a refused graph, read what the server has (it may not have been read yet, or have
        changed): True if it lacks a node or model `job` needs, so another server should run it."""
        known = instance.capabilities
        if self.health is not None and (known is None or time.time() - known.fetched_at > RECHECK_S):
            await self.health.read_capabilities(instance)
        needs = self.placement.job_needs(job)
        return needs is not None and bool(self.placement.lacks(instance, needs))

    async def _release(self, instance: str, *, requeued: bool) -> None:
        """Free the attempt's slot; `requeued`: its job may be pending again (any end but completed)."""
        await self.slots.release(instance)
        self._unplaced.clear()  # the freed slot may be one that a job waiting unplaced can use
        if requeued:
            self.notify()
        else:
            self._wake.set()  # a free slot: the queue is looked at unless the last claim found it empty
        await self.events.announce_work()

    def _time_left(self, job: Job) -> float:
        started = job.started_at if job.started_at is not None else time.time()
        return max(0.5, self.job_timeout_s - (time.time() - started))

    # --- control from outside ---

    async def stop_job(self, job_id: str, reason: StopReason) -> bool:
        running = self.running.get(job_id)
        if running is None:
            return False
        running.stop_reason = reason
        await cancel_and_wait(running.task)
        return True

    async def renew_leases(self) -> None:
        """Keep the leases of running jobs alive; a job whose lease was taken over stops here."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            for job_id, running in list(self.running.items()):
                ok = await self.store.renew_lease(job_id, running.job.attempt, self.owner, self.lease_s)
                if not ok and job_id in self.running:
                    await self.stop_job(job_id, "lease_lost")

    async def drain(self, grace_s: float) -> int:
        """Stop starting jobs; give running ones `grace_s` to finish; leave the rest for a restart."""
        self.draining = True
        tasks = [r.task for r in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        left = list(self.running)
        for job_id in left:
            await self.stop_job(job_id, "shutdown")
        return len(left)

    async def aclose(self) -> None:
        """Stop whatever job task is still running (after `drain`, none should be)."""
        await self._jobs.aclose()

    # --- adopting jobs whose worker is gone ---

    async def adopt(self, jobs: list[Job] | tuple[Job, ...]) -> int:
        """Take over processing jobs of a dead worker: re-attach to their prompt, or queue them again."""
        adopted = 0
        for job in jobs:
            if job.id in self.running:  # ours and alive: its lease renewal was only late
                continue
            taken = await self.store.take_over(job.id, job.attempt, self.owner, self.lease_s)
            if taken is None:
                continue
            adopted += 1
            instance = self.pool.get(taken.instance) if taken.instance else None
            taken.prompt_id = taken.prompt_id or prompt_id_for(job.id, job.attempt)
            if instance is not None:
                await self.slots.adopt(job.lease_owner, instance.name)
                self.start(taken, instance, reattach=True)
            else:
                await self.store.requeue(taken.id, taken.attempt, {
                    "message": "its worker stopped before the prompt could be followed", "code": "abandoned"})
        self.notify()
        return adopted

    async def adopt_expired(self) -> int:
        return await self.adopt(list(await self.store.expired_leases(time.time())))
