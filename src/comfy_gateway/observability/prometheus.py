"""Prometheus metrics for `GET /metrics`, in a registry owned by one `PromMetrics` object.

Never the process-global registry: every app (and every test) builds its own, so two apps in one
process do not collide and nothing leaks between tests.

Label cardinality is bounded: `route` is the route template (`/api/jobs/{job_id}/status`) or
"unmatched", never a raw path; `instance` is a configured server; `kind` and `outcome` are short
fixed vocabularies chosen by the caller (e.g. outcome "completed" | "failed" | "timed_out",
kind "connect" | "timeout" | "http_5xx" | "websocket").
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "comfy_gateway_"
UNMATCHED_ROUTE = "unmatched"

CIRCUIT_STATES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}

_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class PromMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._add_http_series(r)
        self.jobs = Counter(
            PREFIX + "jobs_total",
            "Jobs that reached an end state.",
            ["type", "instance", "outcome"],
            registry=r,
        )
        self.job_duration = Histogram(
            PREFIX + "job_duration_seconds",
            "Processing time of finished jobs on a ComfyUI server.",
            ["type"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.job_queue_wait = Histogram(
            PREFIX + "job_queue_wait_seconds",
            "Time jobs waited before a server started them.",
            ["type"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(PREFIX + "queue_depth", "Jobs waiting for a server.", registry=r)
        self.jobs_running = Gauge(
            PREFIX + "jobs_running", "Jobs running now, per ComfyUI server.", ["instance"], registry=r
        )
        self.instance_healthy = Gauge(
            PREFIX + "instance_healthy",
            "1 if the server passes health checks, else 0.",
            ["instance"],
            registry=r,
        )
        self.circuit_breaker_state = Gauge(
            PREFIX + "circuit_breaker_state",
            "Circuit breaker per server: 0 closed, 1 half-open, 2 open.",
            ["instance"],
            registry=r,
        )
        self.websocket_reconnects = Counter(
            PREFIX + "websocket_reconnects_total",
            "WebSocket reconnections to a server.",
            ["instance"],
            registry=r,
        )
        self.upstream_errors = Counter(
            PREFIX + "upstream_errors_total",
            "Errors talking to a ComfyUI server, by kind.",
            ["instance", "kind"],
            registry=r,
        )
        self._add_autoscaling_gauges(r)

    def _add_autoscaling_gauges(self, r: CollectorRegistry) -> None:
        """What an autoscaler (KEDA, HPA) scales ComfyUI servers on; read from the store at scrape time."""
        self.queue_depth_by_workflow = Gauge(
            PREFIX + "queue_depth_by_workflow", "Jobs waiting for a server, per workflow.", ["workflow"], registry=r
        )
        self.demand_by_workflow = Gauge(
            PREFIX + "demand_by_workflow", "Jobs wanting a server (waiting or running), per workflow.",
            ["workflow"], registry=r,
        )
        self.oldest_pending_age = Gauge(
            PREFIX + "queue_oldest_pending_age_seconds", "Age of the oldest waiting job; 0 when none waits.",
            registry=r,
        )
        self.pool_slots = Gauge(
            PREFIX + "pool_slots", "Job slots on healthy servers (MAX_JOBS_PER_INSTANCE each, within "
            "MAX_CONCURRENT_JOBS).", registry=r,
        )
        self.pool_slots_busy = Gauge(PREFIX + "pool_slots_busy", "Job slots in use.", registry=r)
        self.instance_slots = Gauge(
            PREFIX + "instance_slots", "Job slots one server offers (MAX_JOBS_PER_INSTANCE).", ["instance"], registry=r
        )

    def _add_http_series(self, r: CollectorRegistry) -> None:
        self.http_requests = Counter(
            PREFIX + "http_requests_total",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            PREFIX + "http_request_duration_seconds",
            "Time to answer an HTTP request, body included.",
            ["method", "route"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )

    # ---- recording helpers (the metric attributes stay available for anything unusual) ---------

    def observe_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        self.http_requests.labels(method=method, route=route, status=str(status)).inc()
        self.http_request_duration.labels(method=method, route=route).observe(duration_s)

    def job_started(self, job_type: str, queue_wait_s: float) -> None:
        self.job_queue_wait.labels(type=job_type).observe(max(0.0, queue_wait_s))

    def job_finished(
        self, job_type: str, instance: str | None, outcome: str, duration_s: float | None
    ) -> None:
        self.jobs.labels(type=job_type, instance=instance or "unassigned", outcome=outcome).inc()
        if duration_s is not None:
            self.job_duration.labels(type=job_type).observe(max(0.0, duration_s))

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def set_demand(self, pending: dict[str, int], processing: dict[str, int], workflows: list[str],
                   oldest_age_s: float | None) -> None:
        """Per workflow (every configured one, 0 when idle, so a scaler sees it drop to zero)."""
        for name in sorted({*workflows, *pending, *processing}):
            waiting = pending.get(name, 0)
            self.queue_depth_by_workflow.labels(workflow=name).set(waiting)
            self.demand_by_workflow.labels(workflow=name).set(waiting + processing.get(name, 0))
        self.oldest_pending_age.set(max(0.0, oldest_age_s or 0.0))

    def set_pool_slots(self, slots: int, busy: int, per_instance: dict[str, int]) -> None:
        self.pool_slots.set(slots)
        self.pool_slots_busy.set(busy)
        for instance, count in per_instance.items():
            self.instance_slots.labels(instance=instance).set(count)

    def set_jobs_running(self, instance: str, count: int) -> None:
        self.jobs_running.labels(instance=instance).set(count)

    def set_instance_healthy(self, instance: str, healthy: bool) -> None:
        self.instance_healthy.labels(instance=instance).set(1 if healthy else 0)

    def set_circuit_state(self, instance: str, state: str) -> None:
        """`state` is "closed", "half_open" (or "half-open") or "open"."""
        key = state.lower().replace("-", "_")
        if key not in CIRCUIT_STATES:
            raise ValueError(f"unknown circuit state {state!r}")
        self.circuit_breaker_state.labels(instance=instance).set(CIRCUIT_STATES[key])

    def websocket_reconnected(self, instance: str) -> None:
        self.websocket_reconnects.labels(instance=instance).inc()

    def upstream_error(self, instance: str, kind: str) -> None:
        self.upstream_errors.labels(instance=instance, kind=kind).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for the `/metrics` response."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
