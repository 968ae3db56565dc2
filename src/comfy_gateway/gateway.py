"""The composition root: one Gateway owns the store, blobs, servers, dispatcher, health and metrics.

Built by the app's lifespan (or the CLI) from Settings; everything it opens it closes, in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from .comfyui.breaker import BreakerState
from .comfyui.health import HealthChecker
from .comfyui.instance import Instance, InstancePool
from .dispatch.dispatcher import Dispatcher
from .dispatch.execution import JobExecution, input_key, prompt_id_for
from .dispatch.janitor import Janitor
from .dispatch.slots import LocalSlots, SlotLedger
from .errors import JobNotFound, ServiceUnavailable
from .images import ImageInfo
from .jobs.blob_cache import CachedBlobStore
from .jobs.blobs import BlobStore
from .jobs.events import JobEvents, LocalJobEvents
from .jobs.model import Job, JobState, new_job_id
from .jobs.store import JobStore
from .observability.job_metrics import JobMetrics
from .observability.logging import get_logger
from .observability.prometheus import PromMetrics
from .observability.telemetry import Telemetry
from .observability.tracing import Tracing
from .readiness import Readiness, check_readiness
from .settings import Settings
from .tasks import BackgroundTasks
from .webhooks import WebhookSender
from .workflows.registry import WorkflowRegistry

if TYPE_CHECKING:
    from .scaleout.cluster_metrics import ClusterMetrics

STRANDED_GRACE_S = 3.0


class Gateway:
    def __init__(self, settings: Settings, *, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.tracing = tracing or Tracing.from_settings(settings)
        self.log = get_logger("gateway")
        self.registry = WorkflowRegistry.load(settings.workflows_dir, settings.input_mode)
        self.metrics = JobMetrics(settings.metrics_file_path, replica=settings.replica_id)
        self.prom = PromMetrics()
        self.telemetry = Telemetry(self.metrics, self.prom, get_logger("job-processor"))
        self.started_at = time.time()
        self.admitting = False
        self._stack = contextlib.AsyncExitStack()
        self._tasks = BackgroundTasks(self.telemetry.log_exception)

    # --- life cycle ---

    async def __aenter__(self) -> Gateway:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _open(self) -> None:
        s = self.settings
        self._stack.push_async_callback(self.tracing.aclose)  # last out: sends the shutdown's spans too
        for folder in (s.data_dir, s.blobs_dir, s.logs_dir, s.metrics_file_path.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.metrics.load()
        self.session = await self._stack.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),  # https (COMFYUI_USE_SSL) verifies certificates
            skip_auto_headers=("Origin",)))
        self.cluster: ClusterMetrics | None = None  # the cluster view, with JOB_STORE=redis
        self.store, self.blobs, self.events, self.slots = await self._open_backends()
        self.pool = await self._stack.enter_async_context(InstancePool(
            s.instance_hosts, base_url=s.base_url, session=self.session,
            max_connections=s.max_connections_per_instance,
            on_breaker_change=self._breaker_changed, on_reconnect=self._socket_reconnected))
        self.health = HealthChecker(self.pool, interval_s=s.health_check_interval / 1000,
                                    timeout_s=s.health_check_timeout / 1000, on_probe=self._probed)
        self.execution = JobExecution(store=self.store, blobs=self.blobs, registry=self.registry,
                                      outputs_dir=s.outputs_dir if s.output_files else None)
        self.dispatcher = Dispatcher(
            store=self.store, blobs=self.blobs, slots=self.slots, pool=self.pool, execution=self.execution,
            events=self.events, telemetry=self.telemetry, health=self.health, owner=s.replica_id,
            lease_s=s.lease_s, job_timeout_s=s.job_timeout_s, max_attempts=s.max_attempts,
            sweep_s=s.job_processing_interval / 1000, tracing=self.tracing)
        self.janitor = Janitor(store=self.store, blobs=self.blobs, dispatcher=self.dispatcher,
                               retention_s=s.job_cleanup_interval / 1000, queue_timeout_s=s.queue_timeout_s,
                               interval_s=min(s.job_cleanup_interval / 1000, 5.0), log=self.log)
        self.webhooks = WebhookSender(self.session, self.store, self._tasks, get_logger("webhooks"), self.tracing)
        self.telemetry.finished_listeners.append(self.webhooks.job_finished)
        self.events.on_work(self.dispatcher.notify)
        self.events.on_breaker_open(self._remote_breaker_open)
        self._stack.push_async_callback(self._shutdown)
        await self._recover()
        self._tasks.spawn(self.dispatcher.run, "dispatcher")
        self._tasks.spawn(self.health.run, "health-checker")
        self._tasks.spawn(self.janitor.run, "janitor")
        self._tasks.spawn(self.dispatcher.renew_leases, "lease-renewal")
        self._tasks.spawn(lambda: self.metrics.run_autosave(s.metrics_save_interval / 1000), "metrics-autosave")
        self.admitting = True
        self.log.info("Gateway started", instances=list(s.instance_hosts), store=s.job_store,
                      replica=s.replica_id)

    async def _open_backends(self) -> tuple[JobStore, BlobStore, JobEvents, SlotLedger]:
        s = self.settings
        if s.job_store == "redis":
            from .scaleout import open_redis_backends

            redis = await open_redis_backends(s, self.metrics, self._stack)
            self.cluster = redis.cluster
            self.telemetry.finished_listeners.append(lambda job, ok: redis.cluster.changed())
            self._tasks.spawn(redis.slots.run_heartbeat, "slot-heartbeat")
            self._tasks.spawn(redis.cluster.run, "cluster-metrics")
            cached = CachedBlobStore(redis.blobs, s.blob_cache_bytes)  # the inner one is closed by its owner
            return redis.store, cached, redis.events, redis.slots
        from .jobs.blob_dir import DirectoryBlobStore
        from .jobs.sqlite import SqliteJobStore

        store = await self._stack.enter_async_context(SqliteJobStore(s.jobs_db_path))
        # No fsync: like the jobs database (WAL, synchronous=NORMAL), blobs survive a crash of the
        # gateway (the page cache keeps them), not a power cut of the machine.
        blobs = await self._stack.enter_async_context(
            CachedBlobStore(DirectoryBlobStore(s.blobs_dir, fsync=False), s.blob_cache_bytes))
        events = LocalJobEvents()
        self._stack.push_async_callback(events.close)
        return store, blobs, events, LocalSlots(s.max_jobs_per_instance, s.max_concurrent_jobs)

    async def _recover(self) -> None:
        """Jobs a previous process left processing are re-attached to their prompt or queued again."""
        # The embedded store has one owner, so whatever runs there was ours. With Redis, the leases held
        # under this replica's own id (a REPLICA_ID that survives restarts) belong to the process that
        # just died: no need to wait for them to run out.
        embedded = self.settings.job_store == "sqlite"
        for job in await self.store.unfinished():
            if job.state is JobState.PROCESSING and (embedded or job.lease_owner == self.settings.replica_id):
                await self.store.expire_lease(job.id, job.attempt)
        adopted = await self.dispatcher.adopt_expired()
        pending = await self.store.pending_count()
        if adopted or pending:
            self.log.info("Recovered jobs from the store", adopted=adopted, pending=pending)

    def begin_drain(self) -> None:
        """Stop admitting new jobs (they get 503); called first thing on SIGTERM."""
        if self.admitting:
            self.admitting = False
            self.dispatcher.draining = True
            self.log.info("Draining: no new jobs are admitted")

    async def _shutdown(self) -> None:
        self.begin_drain()
        left = await self.dispatcher.drain(self.settings.shutdown_grace / 1000)
        await self._tasks.aclose()
        with contextlib.suppress(OSError):
            self.metrics.save()
        self.log.info("Gateway stopped", jobsLeftForRestart=left)

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    # --- callbacks ---

    def _breaker_changed(self, instance: str, old: BreakerState, new: BreakerState) -> None:
        inst = self.pool.get(instance)
        remote = inst is not None and inst.breaker.opened_remotely
        self.log.warning("Circuit breaker changed", instance=instance, old=old.value, new=new.value,
                         fromOtherReplica=remote)
        if new is BreakerState.OPEN and inst is not None and not remote:
            self._tasks.spawn(lambda: self.events.announce_breaker_open(instance, inst.breaker.retry_in),
                              "announce-breaker", restart_delay=None)
        if new is not BreakerState.OPEN:
            self.dispatcher.notify()

    def _remote_breaker_open(self, instance: str, seconds: float) -> None:
        inst = self.pool.get(instance)
        if inst is not None:
            inst.breaker.trip(seconds)

    def _probed(self, instance: Instance) -> None:
        if instance.healthy is False:
            self.telemetry.upstream_error(instance.name, "probe_failed")

    def _socket_reconnected(self, instance: str) -> None:
        self.prom.websocket_reconnected(instance)
        self.health.kick()  # a lost socket may be a dead server: do not wait for the next probe

    # --- what the API calls ---

    def check_admission(self, sync: bool) -> None:
        if not self.admitting:
            raise ServiceUnavailable("the gateway is shutting down; retry on another replica", retry_after=5)
        if sync and not self.pool.available():
            retry = min((i.breaker.retry_in for i in self.pool), default=5.0)
            raise ServiceUnavailable("no healthy ComfyUI server is available right now",
                                     retry_after=max(1, round(retry)))

    async def submit(self, job_type: str, data: bytes, info: ImageInfo, params: dict[str, Any],
                     idempotency_key: str | None = None) -> tuple[Job, bool]:
        """The job for this request, and whether it is new (False: the idempotency key named one)."""
        job = Job(id=new_job_id(), type=job_type, params=params, input_meta=info.as_meta())
        job.input_blob = input_key(job.id)
        with self.tracing.submitting(job):
            await self.blobs.put(job.input_blob, data)
            try:
                if idempotency_key is None:
                    await self.store.create(job)
                    named, created = job, True
                else:
                    named, created = await self.store.create_once(job, idempotency_key,
                                                                  self.settings.idempotency_ttl / 1000)
            except BaseException:
                await self.blobs.delete(job.input_blob)
                raise
        if not created:
            await self.blobs.delete(job.input_blob)
            return named, False
        self.dispatcher.notify()
        await self.events.announce_work()
        return job, True

    async def get(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} not found", job_id=job_id)
        return job

    async def wait(self, job_id: str, timeout_s: float) -> Job:
        """The job once it has finished (or as it is when `timeout_s` runs out)."""
        event = self.events.subscribe(job_id)
        try:
            job = await self.get(job_id)
            if not job.state.finished:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout_s):
                        await event.wait()
                job = await self.get(job_id)
            return job
        finally:
            self.events.unsubscribe(job_id, event)

    async def wait_sync(self, job_id: str) -> Job:
        """A sync request's wait: until its job ends, unless the job cannot start.

        A job still pending while no server is available (for STRANDED_GRACE_S) or while the gateway
        drains is withdrawn (failed with a 503 reason), so the client does not hang and a later run
        cannot surprise it. Woken by the job's own event; once a second it looks at the pool, and
        reads the job only when the pool gives a reason to."""
        deadline = time.monotonic() + self.sync_wait_limit()
        stranded_since: float | None = None
        event = self.events.subscribe(job_id)
        try:
            job = await self.get(job_id)
            while not job.state.finished and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, min(1.0, deadline - time.monotonic()))):
                        await event.wait()
                if event.is_set() or not self.admitting or not self.pool.available():
                    job = await self.get(job_id)
                if job.state.finished or job.state is not JobState.PENDING or (
                        self.admitting and self.pool.available()):
                    stranded_since = None
                    continue
                stranded_since = stranded_since or time.monotonic()
                if self.admitting and time.monotonic() - stranded_since < STRANDED_GRACE_S:
                    continue
                return await self._withdraw(job_id)
            return job
        finally:
            self.events.unsubscribe(job_id, event)

    async def _withdraw(self, job_id: str) -> Job:
        reason = "the gateway is shutting down" if not self.admitting else "no healthy ComfyUI server is available"
        await self.store.fail(job_id, None, {"message": f"{reason}; the request was withdrawn, retry later",
                                             "code": "no_server"})
        await self.events.publish_finished(job_id)
        return await self.get(job_id)

    async def result_bytes(self, job: Job) -> bytes:
        assert job.result_blob is not None
        try:
            return await self.blobs.get(job.result_blob)
        except KeyError:
            raise JobNotFound(f"the result of job {job.id} is no longer stored", job_id=job.id) from None

    async def delete(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if not await self.dispatcher.stop_job(job_id, "deleted") and job.state is JobState.PROCESSING:
            await self._cancel_elsewhere(job)  # running on another replica: stop its prompt from here
        removed = await self.store.delete(job_id)
        await self.janitor.remove(removed or job)
        await self.events.publish_finished(job_id)
        return removed or job

    async def _cancel_elsewhere(self, job: Job) -> None:
        instance = self.pool.get(job.instance) if job.instance else None
        if instance is not None:
            job.prompt_id = job.prompt_id or prompt_id_for(job.id, job.attempt)
            await self.dispatcher.interrupt_prompt(job, instance)

    async def metrics_summary(self) -> dict[str, Any]:
        summary = self.metrics.summary()
        if self.cluster is not None:  # the seed's totals are the cluster's; this replica's stay beside them
            cluster = await self.cluster.merged()
            summary["replica_view"] = {"jobs": summary["jobs"], "instances": summary["instances"]}
            summary["jobs"] = {**summary["jobs"], **cluster["jobs"]}
            summary["instances"] = cluster["instances"]
            summary["cluster"] = {"replicas": cluster["replicas"], "performance": cluster["performance"]}
        summary["instances"] = await self.instance_views(summary["instances"])
        active = sum(view["active_jobs"] for view in summary["instances"].values())
        summary["queue"] = {"pending_jobs": await self.store.pending_count(), "active_jobs": active}
        return summary

    async def instance_views(self, views: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Metrics views of the servers plus their live state: slots in use, health, breaker.

        Every configured server is there, even before its first job."""
        usage = await self.slots.usage()
        for inst in self.pool:
            views.setdefault(inst.name, {"instance": inst.name, "total_jobs": 0})
        for name, view in views.items():
            view["active_jobs"] = usage.get(name, 0)
            inst = self.pool.get(name)
            if inst is not None:
                view.update(healthy=inst.is_healthy, circuit_breaker=inst.breaker.state.value)
        return views

    async def refresh_gauges(self) -> None:
        """Point-in-time gauges are read when Prometheus scrapes, not kept up to date by hand."""
        usage = await self.slots.usage()
        self.prom.set_queue_depth(await self.store.pending_count())
        for inst in self.pool:
            self.prom.set_jobs_running(inst.name, usage.get(inst.name, 0))
            self.prom.set_instance_healthy(inst.name, inst.is_healthy)
            self.prom.set_circuit_state(inst.name, inst.breaker.state.value)
        await self._refresh_autoscaling_gauges(sum(usage.values()))

    async def _refresh_autoscaling_gauges(self, busy: int) -> None:
        s = self.settings
        queue = await self.store.queue_stats()
        oldest = queue.oldest_pending_created_at
        self.prom.set_demand(queue.pending_by_type, queue.processing_by_type, self.registry.names(),
                             None if oldest is None else time.time() - oldest)
        slots = min(s.max_concurrent_jobs, self.pool.healthy_count() * s.max_jobs_per_instance)
        self.prom.set_pool_slots(slots, busy)

    async def readiness(self) -> Readiness:
        return await check_readiness(self.store, self.pool, admitting=self.admitting,
                                     max_queue_depth=self.settings.max_queue_depth)

    def sync_wait_limit(self) -> float:
        return self.settings.queue_timeout_s + self.settings.job_timeout_s + 5
