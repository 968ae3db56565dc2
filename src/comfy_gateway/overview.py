"""What operators read and steer: the servers' live state, the metrics, the circuit breakers.

The per-server snapshot is built in one place (`instances`) and read by health, processor stats,
the metrics API and the Prometheus gauges alike, so they can never disagree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .comfyui.breaker import BreakerFigures, BreakerState, CircuitBreaker
from .comfyui.instance import InstancePool
from .dispatch.dispatcher import Dispatcher
from .dispatch.slots import SlotLedger
from .errors import NotFound, StorageError
from .jobs.store import JobStore, StoreCounts
from .observability.job_metrics import JobMetrics, MetricsReading
from .observability.prometheus import PromMetrics
from .observability.timeline import Timeline
from .readiness import Readiness, check_readiness
from .service import Admission

if TYPE_CHECKING:
    from .autoscaling import AutoscalingSignals
    from .scaleout.cluster_metrics import ClusterMetrics


@dataclass(frozen=True)
class InstanceSnapshot:
    """One server at one moment: health, breaker and slots in use (on every replica)."""

    name: str
    healthy: bool
    breaker: BreakerState
    active_jobs: int
    running_here: tuple[str, ...]  # ids of the jobs this replica runs there
    detail: dict[str, Any]  # the server's own view: url, last probe, breaker figures
    figures: BreakerFigures  # the breaker's counts, for the original's views
    last_check_at: float | None  # epoch seconds of the last health probe
    sockets_open: int  # WebSockets up now
    sockets_opened: int  # WebSockets opened since start (the newest thousand)


class Overview:
    def __init__(self, *, pool: InstancePool, slots: SlotLedger, store: JobStore, dispatcher: Dispatcher,
                 metrics: JobMetrics, prom: PromMetrics, admission: Admission,
                 cluster: ClusterMetrics | None, timeline: Timeline, max_queue_depth: int = 0,
                 signals: AutoscalingSignals | None = None) -> None:
        self._pool = pool
        self._slots = slots
        self._store = store
        self._dispatcher = dispatcher
        self._admission = admission
        self._cluster = cluster
        self.metrics = metrics
        self.prom = prom
        self.timeline = timeline
        self.started_at = time.time()
        self._max_queue_depth = max_queue_depth
        self._signals = signals

    # --- the gateway as a whole ---

    @property
    def admitting(self) -> bool:
        return self._admission.open

    @property
    def processor_running(self) -> bool:
        return not self._dispatcher.draining

    @property
    def running_here(self) -> int:
        return len(self._dispatcher.running)

    @property
    def instance_count(self) -> int:
        return len(self._pool)

    def storage_problem(self) -> dict[str, str] | None:
        """The job store's or blob storage's current fault, if any: {"error", "code"}."""
        error = self._admission.storage.current()
        return None if error is None else {"error": error.message, "code": error.code}

    async def job_counts(self) -> StoreCounts:
        """The jobs the store holds; none while it does not answer (the fault is then in `storage_problem`)."""
        try:
            return await self._store.counts()
        except StorageError as exc:
            self._admission.storage.failed(exc)
            return StoreCounts()

    async def pending_count(self) -> int:
        """Jobs waiting; 0 while the store does not answer (the fault is then in `storage_problem`)."""
        try:
            return await self._store.pending_count()
        except StorageError as exc:
            self._admission.storage.failed(exc)
            return 0

    async def readiness(self) -> Readiness:
        """Whether this replica can take work now (`/ready`)."""
        fault = self._admission.storage.current()
        return await check_readiness(self._store, self._pool, admitting=self._admission.open,
                                     max_queue_depth=self._max_queue_depth,
                                     storage_fault=None if fault is None else fault.message)

    async def queue_depth(self) -> tuple[int, int]:
        """Jobs waiting and jobs running, over the whole pool (what the timeline samples)."""
        usage = await self._slots.usage()
        return await self._store.pending_count(), sum(usage.values())

    # --- the servers ---

    async def instances(self) -> list[InstanceSnapshot]:
        try:
            usage = await self._slots.usage()
        except StorageError as exc:  # health still answers, with the storage named as the problem
            self._admission.storage.failed(exc)
            usage = {}
        running = self._dispatcher.running
        claiming = self._dispatcher.claiming  # its slot is held for a claim, not by a job
        return [InstanceSnapshot(
            name=inst.name, healthy=inst.is_healthy, breaker=inst.breaker.state,
            active_jobs=max(0, usage.get(inst.name, 0) - (inst.name == claiming)),
            running_here=tuple(sorted(j for j, r in running.items() if r.instance == inst.name)),
            detail=inst.snapshot(), figures=inst.breaker.figures(), last_check_at=inst.last_check_at,
            sockets_open=inst.hub.sockets_open, sockets_opened=len(inst.hub.client_ids_used)) for inst in self._pool]

    async def instance_views(self, views: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Metrics views of the servers plus their live state: slots in use, health, breaker.

        Every configured server is there, even before its first job."""
        snaps = {snap.name: snap for snap in await self.instances()}
        for name in snaps:
            views.setdefault(name, {"instance": name, "total_jobs": 0})
        for name, view in views.items():
            snap = snaps.get(name)
            view["active_jobs"] = 0 if snap is None else snap.active_jobs
            if snap is not None:
                view.update(healthy=snap.healthy, circuit_breaker=snap.breaker.value)
            inst = self._pool.get(name)
            if inst is not None:  # capabilities, warm models, VRAM, measured service times: live, not saved
                view["placement"] = self._dispatcher.placement.describe(inst)
        return views

    async def metrics_summary(self) -> dict[str, Any]:
        summary = self.metrics.summary()
        if self._cluster is not None:  # the seed's totals are the cluster's; this replica's stay beside them
            cluster = await self._cluster.merged()
            summary["replica_view"] = {"jobs": summary["jobs"], "instances": summary["instances"]}
            summary["jobs"] = {**summary["jobs"], **cluster["jobs"]}
            summary["instances"] = cluster["instances"]
            summary["cluster"] = {"replicas": cluster["replicas"], "performance": cluster["performance"]}
        summary["instances"] = await self.instance_views(summary["instances"])
        active = sum(view["active_jobs"] for view in summary["instances"].values())
        summary["queue"] = {"pending_jobs": await self._store.pending_count(), "active_jobs": active}
        return summary

    async def reading(self) -> MetricsReading:
        """The metrics figures: the whole cluster's with JOB_STORE=redis, else this gateway's."""
        return self.metrics.reading() if self._cluster is None else await self._cluster.merged_reading()

    async def refresh_gauges(self) -> None:
        """Point-in-time gauges are read when Prometheus scrapes, not kept up to date by hand."""
        self.prom.set_queue_depth(await self._store.pending_count())
        snaps = await self.instances()
        for snap in snaps:
            self.prom.set_jobs_running(snap.name, snap.active_jobs)
            self.prom.set_instance_healthy(snap.name, snap.healthy)
            self.prom.set_circuit_state(snap.name, snap.breaker.value)
        if self._signals is not None:
            await self._signals.refresh(sum(snap.active_jobs for snap in snaps))

    # --- the breakers ---

    def breaker(self, name: str) -> CircuitBreaker:
        instance = self._pool.get(name)
        if instance is None:
            raise NotFound(f"unknown instance {name!r}", known=[i.name for i in self._pool])
        return instance.breaker

    def breakers(self) -> dict[str, dict[str, object]]:
        return {i.name: i.breaker.snapshot() for i in self._pool}

    def open_breaker(self, name: str) -> CircuitBreaker:
        breaker = self.breaker(name)
        breaker.force_open()
        return breaker

    def close_breaker(self, name: str) -> CircuitBreaker:
        breaker = self.breaker(name)
        breaker.force_close()
        self._dispatcher.notify()
        return breaker
