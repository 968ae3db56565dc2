"""The composition root: builds the store, blobs, servers, dispatcher, janitor, webhooks and metrics,
and the two doors the API uses (`service`: jobs; `overview`: servers, metrics, breakers).

Built by the app's lifespan from Settings; everything it opens it closes, in reverse. Every
background task belongs to `_tasks` (or to the dispatcher, for jobs), which are closed before the
parts they use, also when the start fails half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from .access import (
    DestinationPolicy,
    KeyRing,
    LocalRateLimiter,
    Quotas,
    RateLimiter,
    RedisRateLimiter,
    WebhookSigner,
)
from .autoscaling import AutoscalingSignals
from .background import BackgroundTasks
from .comfyui.breaker import BreakerState
from .comfyui.health import HealthChecker
from .comfyui.instance import Instance, InstancePool
from .comfyui.models import ClientLimits
from .dispatch.dispatcher import Dispatcher
from .dispatch.estimates import ServiceEstimates
from .dispatch.execution import JobExecution
from .dispatch.janitor import Janitor
from .dispatch.placement import Placement
from .dispatch.slots import LocalSlots, SlotLedger
from .graph_jobs import GraphJobs
from .job_outputs import JobOutputs
from .jobs.assets import AssetStore
from .jobs.blob_cache import CachedBlobStore
from .jobs.blobs import BlobStore
from .jobs.events import JobEvents, LocalJobEvents
from .jobs.model import Job, JobState
from .jobs.storage_faults import StorageFaults
from .jobs.store import JobStore
from .memory_trim import MemoryTrimmer
from .observability.job_metrics import JobMetrics
from .observability.logging import get_logger
from .observability.prometheus import PromMetrics
from .observability.telemetry import Telemetry
from .observability.timeline import Timeline
from .observability.tracing import Tracing
from .overview import Overview
from .service import Admission, JobService
from .settings import Settings
from .webhooks import WebhookSender
from .workflows.registry import WorkflowRegistry

if TYPE_CHECKING:
    from .scaleout import RedisBackends
    from .scaleout.cluster_metrics import ClusterMetrics

JobView = Callable[[Job], dict[str, Any]]


class Gateway:
    def __init__(self, settings: Settings, *, webhook_body: JobView, prom: PromMetrics | None = None,
                 keys: KeyRing | None = None, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.tracing = tracing or Tracing.off()  # the caller's to close
        self.keys = keys or KeyRing(settings.api_keys_file)
        self.destinations = DestinationPolicy(settings.webhook_allow_list)
        self.log = get_logger("gateway")
        self.registry = WorkflowRegistry.load(settings.workflows_dir, settings.input_mode)
        self.metrics = JobMetrics(settings.metrics_file_path, replica=settings.replica_id)
        self.prom = prom or PromMetrics()
        self.telemetry = Telemetry(self.metrics, self.prom, get_logger("job-processor"))
        self._webhook_body = webhook_body
        self._stack = contextlib.AsyncExitStack()
        self._tasks = BackgroundTasks(self.telemetry.log_exception)
        self._drain_lock = asyncio.Lock()
        self._left_running: int | None = None  # set once the drain is over
        self.storage_faults = StorageFaults(get_logger("storage"))

    # --- life cycle ---

    async def __aenter__(self) -> Gateway:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        s = self.settings
        for folder in (s.data_dir, s.blobs_dir, s.logs_dir, s.metrics_file_path.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.metrics.load()
        self.session = await self._stack.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),  # https (COMFYUI_USE_SSL) verifies certificates
            skip_auto_headers=("Origin",)))
        self.cluster: ClusterMetrics | None = None  # the cluster view, with JOB_STORE=redis
        redis = await self._open_backends()
        self.results = await self._open_results()
        self.pool = await self._stack.enter_async_context(InstancePool(
            s.instance_hosts, base_url=s.base_url, session=self.session,
            max_connections=s.max_connections_per_instance, limits=upstream_limits(s),
            on_breaker_change=self._breaker_changed, on_reconnect=self._socket_reconnected))
        self._build_parts(redis)
        await self._stack.enter_async_context(self.webhooks)
        # Registered before anything is spawned: a start that fails from here on stops every task.
        self._stack.push_async_callback(self._shutdown)
        await self._recover()
        resumed = await self.webhooks.resume()
        if resumed:
            self.log.info("Resumed webhook deliveries", count=resumed)
        self._spawn_loops(redis)
        self.admission.open = True
        self.log.info("Gateway started", instances=list(s.instance_hosts), store=s.job_store,
                      replica=s.replica_id)

    def _build_parts(self, redis: RedisBackends | None) -> None:
        s = self.settings
        self.health = HealthChecker(self.pool, interval_s=s.health_check_interval / 1000,
                                    timeout_s=s.health_check_timeout / 1000, on_probe=self._probed,
                                    capabilities_s=s.capabilities_refresh_s,
                                    on_capabilities=lambda inst: self.dispatcher.notify())
        self.placement = Placement(pool=self.pool, registry=self.registry, estimates=self._estimates(),
                                   strategy=s.placement, per_instance=s.max_jobs_per_instance,
                                   total=s.max_concurrent_jobs)
        self.execution = JobExecution(store=self.store, blobs=self.blobs, registry=self.registry,
                                      outputs_dir=s.outputs_dir if s.output_files else None,
                                      results=self.results, result_ttl_s=s.result_ttl_s,
                                      max_result_pixels=s.max_result_pixels)
        self.dispatcher = Dispatcher(
            store=self.store, blobs=self.blobs, slots=self.slots, pool=self.pool, execution=self.execution,
            events=self.events, telemetry=self.telemetry, health=self.health, placement=self.placement,
            owner=s.replica_id,
            lease_s=s.lease_s, job_timeout_s=s.job_timeout_s, max_attempts=s.max_attempts,
            sweep_s=s.job_processing_interval / 1000, tenant_caps=self.keys.concurrency_caps,
            tracing=self.tracing)
        self.janitor = Janitor(store=self.store, blobs=self.blobs, dispatcher=self.dispatcher,
                               retention_s=s.job_retention_s, queue_timeout_s=s.queue_timeout_s,
                               interval_s=min(s.job_cleanup_interval / 1000, 5.0), log=self.log,
                               results=self.results, result_ttl_s=s.result_ttl_s)
        self.webhooks = WebhookSender(
            self.store, self._tasks, get_logger("webhooks"), body=self._webhook_body, policy=self.destinations,
            signer=WebhookSigner(s.webhook_secret) if s.webhook_secret else None, timeout_s=s.webhook_timeout / 1000,
            tracing=self.tracing)
        self.telemetry.finished_listeners.append(self.webhooks.job_finished)
        self.events.on_work(self.dispatcher.notify)
        self.events.on_breaker_open(self._remote_breaker_open)
        self.admission = Admission(self.pool, self.dispatcher, self.log, self.storage_faults)
        limiter: RateLimiter = LocalRateLimiter()
        if redis is not None:
            limiter = RedisRateLimiter(redis.client, s.redis_prefix)  # one budget per key for all replicas
        self.service = JobService(
            settings=s, store=self.store, blobs=self.blobs, events=self.events, pool=self.pool,
            dispatcher=self.dispatcher, janitor=self.janitor, registry=self.registry, metrics=self.metrics,
            admission=self.admission, quotas=Quotas(self.store, limiter, max_queue_depth=s.max_queue_depth),
            destinations=self.destinations, placement=self.placement, slots=self.slots, tracing=self.tracing,
            outputs=JobOutputs(self.results, url_ttl_s=s.result_url_ttl // 1000, redirect=s.result_redirect))
        self.assets = AssetStore(self.blobs)
        self.graph_jobs = GraphJobs(service=self.service, assets=self.assets, tasks=self._tasks)
        self.overview = Overview(pool=self.pool, slots=self.slots, store=self.store, dispatcher=self.dispatcher,
                                 metrics=self.metrics, prom=self.prom, admission=self.admission,
                                 cluster=self.cluster, max_queue_depth=s.max_queue_depth,
                                 signals=AutoscalingSignals(
                                     store=self.store, pool=self.pool, prom=self.prom, workflows=self.registry.names,
                                     per_instance=s.max_jobs_per_instance, total=s.max_concurrent_jobs),
                                 timeline=Timeline())
        self.telemetry.finished_listeners.append(self.overview.timeline.job_finished)

    def _estimates(self) -> ServiceEstimates:
        """Service times start from each workflow manifest's low estimate until they are measured."""
        priors = {wf.name: float(wf.estimated_seconds[0])
                  for wf in (self.registry.get(name) for name in self.registry.names()) if wf is not None}
        return ServiceEstimates(prior_s=priors, default_prior_s=10.0,
                                switch_prior_s=self.settings.model_switch_cost_s)

    def _spawn_loops(self, redis: RedisBackends | None) -> None:
        s = self.settings
        if redis is not None:
            cluster = redis.cluster
            self.telemetry.finished_listeners.append(lambda job, ok: cluster.changed())
            self._tasks.spawn_loop(redis.slots.run_heartbeat, "slot-heartbeat")
            self._tasks.spawn_loop(cluster.run, "cluster-metrics")
        self._tasks.spawn_loop(self.dispatcher.run, "dispatcher")
        self._tasks.spawn_loop(self.health.run, "health-checker")
        self._tasks.spawn_loop(self.janitor.run, "janitor")
        self._tasks.spawn_loop(MemoryTrimmer(s.memory_trim_interval / 1000).run, "memory-trim")
        self._tasks.spawn_loop(self.dispatcher.renew_leases, "lease-renewal")
        self._tasks.spawn_loop(lambda: self.metrics.run_autosave(s.metrics_save_interval / 1000),
                               "metrics-autosave")
        self._tasks.spawn_loop(lambda: self.overview.timeline.run(self.overview.queue_depth), "timeline")

    async def _open_backends(self) -> RedisBackends | None:
        s = self.settings
        self.store: JobStore
        self.blobs: BlobStore
        self.events: JobEvents
        self.slots: SlotLedger
        if s.job_store == "redis":
            from .scaleout import open_redis_backends

            redis = await open_redis_backends(s, self.metrics, self._stack, self.storage_faults)
            self.cluster = redis.cluster
            # The inner blob store is closed by its owner.
            self.store, self.events, self.slots = redis.store, redis.events, redis.slots
            self.blobs = CachedBlobStore(redis.blobs, s.blob_cache_bytes)
            return redis
        from .jobs.blob_dir import DirectoryBlobStore
        from .jobs.blob_small import SmallBlobStore
        from .jobs.sqlite import SqliteJobStore

        self.store = await self._stack.enter_async_context(
            SqliteJobStore(s.jobs_db_path, faults=self.storage_faults, log=get_logger("job-store")))
        # No fsync: like the jobs database (WAL, synchronous=NORMAL), blobs survive a crash of the
        # gateway (the page cache keeps them), not a power cut of the machine. Small ones are rows.
        files = DirectoryBlobStore(s.blobs_dir, fsync=False, faults=self.storage_faults)
        small = SmallBlobStore(files, s.blobs_dir / "small.db", faults=self.storage_faults)
        self.blobs = await self._stack.enter_async_context(CachedBlobStore(small, s.blob_cache_bytes))
        events = LocalJobEvents()
        self._stack.push_async_callback(events.close)
        self.events = events
        self.slots = LocalSlots(s.max_jobs_per_instance, s.max_concurrent_jobs)
        return None

    async def _open_results(self) -> BlobStore:
        """Where output files go: the blob store, or the S3 bucket of RESULT_STORE=s3."""
        s = self.settings
        if s.result_store != "s3":
            return self.blobs
        from .jobs.blob_s3 import S3BlobStore

        assert s.s3_bucket is not None  # checked by Settings
        return await self._stack.enter_async_context(
            S3BlobStore(s.s3_bucket, s.s3_prefix, endpoint_url=s.s3_endpoint_url))

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
        admission = getattr(self, "admission", None)
        if admission is not None:
            admission.begin_drain()

    async def drain(self) -> int:
        """Stop admitting, give running jobs SHUTDOWN_GRACE to finish, leave the rest for the restart.

        The server calls it on SIGTERM while it still answers (new work gets 503); the lifespan's
        close calls it again, which then costs nothing: one grace period in all. Returns how many
        jobs were left running."""
        async with self._drain_lock:  # a second caller waits for the first drain, then reads its result
            if self._left_running is None:
                self._left_running = await self._drain_once()
            return self._left_running

    async def _drain_once(self) -> int:
        self.begin_drain()
        left = await self.dispatcher.drain(self.settings.shutdown_grace / 1000)
        self.admission.stop()
        return left

    async def _shutdown(self) -> None:
        left = await self.drain()
        await self._tasks.aclose()
        await self.dispatcher.aclose()
        with contextlib.suppress(OSError):  # already logged, and shown by the persistence status
            await self.metrics.asave()
        self.log.info("Gateway stopped", jobsLeftForRestart=left)

    # --- callbacks ---

    def _breaker_changed(self, instance: str, old: BreakerState, new: BreakerState) -> None:
        inst = self.pool.get(instance)
        remote = inst is not None and inst.breaker.opened_remotely
        self.log.warning("Circuit breaker changed", instance=instance, old=old.value, new=new.value,
                         fromOtherReplica=remote)
        if new is BreakerState.OPEN and inst is not None and not remote and not self._tasks.closed:
            self._tasks.spawn(self.events.announce_breaker_open(instance, inst.breaker.retry_in),
                              "announce-breaker")
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


def upstream_limits(s: Settings) -> ClientLimits:
    """What a ComfyUI server's answers may take, from MAX_UPSTREAM_* and MAX_RESULT_BYTES."""
    return ClientLimits(max_json_bytes=s.max_upstream_json_bytes, max_ws_frame_bytes=s.max_upstream_frame_bytes,
                        max_result_bytes=s.max_result_bytes)
