"""OpenTelemetry traces of the job path: one trace per job, from its HTTP request to its webhook.

A job runs later than its request, maybe after a restart or on another replica, so no span lives
across that gap: `submitting` writes the W3C context of the job's `job.submit` span into the job
record (`Job.trace_context`), and every later span of the job is started from that record:

    HTTP request (SERVER; continues the client's `traceparent`)
      job.submit
        job.queue_wait       from creation (or requeue) to the claim, recorded when it ends
        job.placement        the server chosen, the candidates and why
        job.attempt          one run on one server; inside it, via `step`:
          comfyui.upload     comfyui.prompt (progress as span events)
          comfyui.output_fetch   job.store_result
        webhook.deliver

Off by default. `Tracing.off()` answers every call with shared no-op objects and never touches
the SDK, which is only imported when tracing is on (OTEL_* settings, see `from_settings`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import trace as otel_trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from structlog.typing import EventDict, WrappedLogger

from ..jobs.model import Job

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from ..settings import Settings

T = TypeVar("T")
SERVICE_NAME = "comfy-gateway"
TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()
# The tracer of the job attempt running in this task; None outside one, and always when tracing is off.
_ATTEMPT_TRACER: ContextVar[otel_trace.Tracer | None] = ContextVar("comfy_gateway_attempt_tracer", default=None)
_SECONDS_TO_NS = 1_000_000_000


class Step:
    """A span of the job path as the code that runs it sees it: attributes and events, or nothing."""

    def __init__(self, span: otel_trace.Span | None = None) -> None:
        self._span = span

    def set(self, **attributes: Any) -> None:
        if self._span is not None:
            self._span.set_attributes(_clean(attributes))

    def progress_listener(self, listener: Callable[[float], None]) -> Callable[[float], None]:
        """`listener`, also recording each new whole percent as a `progress` event of this span."""
        span = self._span
        if span is None:
            return listener
        last = -1

        def on_progress(fraction: float) -> None:
            nonlocal last
            pct = int(max(0.0, min(1.0, fraction)) * 100)
            if pct != last:
                last = pct
                span.add_event("progress", {"progress.percent": pct})
            listener(fraction)

        return on_progress


NO_STEP = Step()
_NO_STEP_CONTEXT: AbstractContextManager[Step] = nullcontext(NO_STEP)


def step(name: str, **attributes: Any) -> AbstractContextManager[Step]:
    """A child span of the job attempt running in this task; a shared no-op outside one."""
    tracer = _ATTEMPT_TRACER.get()
    if tracer is None:
        return _NO_STEP_CONTEXT
    return _step_span(tracer, name, attributes)


@contextmanager
def _step_span(tracer: otel_trace.Tracer, name: str, attributes: Mapping[str, Any]) -> Iterator[Step]:
    with tracer.start_as_current_span(name, attributes=_clean(attributes)) as span:
        yield Step(span)


def mark_outcome(ok: bool, error: Mapping[str, Any] | None) -> None:
    """Set the outcome of the job on the span of the attempt running in this task."""
    if _ATTEMPT_TRACER.get() is None:
        return
    span = otel_trace.get_current_span()
    span.set_attribute("job.outcome", "completed" if ok else "failed")
    if not ok:
        message = str((error or {}).get("message", "failed"))
        span.set_attribute("job.error_code", str((error or {}).get("code", "failed")))
        span.set_status(otel_trace.StatusCode.ERROR, message)


def trace_id_of(job: Job) -> str | None:
    """The trace id of a job, from the W3C traceparent in its record (None when it was not traced)."""
    parts = job.trace_context.get(TRACEPARENT, "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the trace and span ids of the current span on every line logged in it."""
    context = otel_trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def _ns(seconds: float) -> int:
    return int(seconds * _SECONDS_TO_NS)


class ServerSpan:
    """The span of one HTTP request, named and given its status once the response is known."""

    def __init__(self, span: otel_trace.Span | None) -> None:
        self._span = span

    def finish(self, method: str, route: str, status: int) -> None:
        if self._span is None:
            return
        self._span.update_name(f"{method} {route}")
        self._span.set_attributes({"http.route": route, "http.response.status_code": status})
        if status >= 500:
            self._span.set_status(otel_trace.StatusCode.ERROR)


class Tracing:
    """Spans of the job path. Built once by the composition root; `off()` costs nothing."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self._tracer = None if provider is None else provider.get_tracer("comfy_gateway")
        self._closed = False

    @classmethod
    def off(cls) -> Tracing:
        return cls()

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing:
        """On when OTEL_TRACES_EXPORTER is otlp or an OTLP endpoint is set; OTEL_SDK_DISABLED wins.

        The SDK reads the other standard variables itself: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
        OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_(TRACES_)HEADERS/TIMEOUT, OTEL_BSP_*."""
        if not settings.tracing_enabled:
            return cls.off()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.with_exporter(OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint), batch=True)

    @classmethod
    def with_exporter(cls, exporter: SpanExporter, *, batch: bool = False) -> Tracing:
        """Tracing on, spans sent to `exporter` (in a background thread with `batch`)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    async def aclose(self) -> None:
        """Send what is buffered and stop (at the gateway's close), in a thread: the export blocks.

        Closing twice is harmless; spans started after it are dropped."""
        provider = self.provider
        if provider is not None and not self._closed:
            self._closed = True
            await asyncio.to_thread(provider.shutdown)

    # --- the HTTP request ---

    @contextmanager
    def server_span(self, method: str, headers: Mapping[str, str]) -> Iterator[ServerSpan]:
        """The request's SERVER span, current while the app answers; a client's traceparent is its parent."""
        if self._tracer is None:
            yield ServerSpan(None)
            return
        parent = _PROPAGATOR.extract({k: v for k, v in headers.items() if k in (TRACEPARENT, "tracestate")})
        with self._tracer.start_as_current_span(method, context=parent, kind=otel_trace.SpanKind.SERVER,
                                                attributes={"http.request.method": method}) as span:
            yield ServerSpan(span)

    # --- the job path ---

    def submitting(self, job: Job) -> AbstractContextManager[Any]:
        """The `job.submit` span around storing a new job; its context goes into `job.trace_context`."""
        if self._tracer is None:
            return _NO_STEP_CONTEXT
        return self._submit_span(self._tracer, job)

    @contextmanager
    def _submit_span(self, tracer: otel_trace.Tracer, job: Job) -> Iterator[Step]:
        # It starts with the job (its queue wait is measured from `created_at` too).
        with tracer.start_as_current_span("job.submit", start_time=_ns(job.created_at),
                                          attributes={"job.id": job.id, "job.type": job.type}) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            job.trace_context = carrier
            yield Step(span)

    def placed(self, job: Job, instance: str, *, candidates: Sequence[str], since: float, avoided: str | None,
               details: Mapping[str, Any]) -> None:
        """Record the wait in the queue and the placement of the attempt that starts now.

        `details` is the placement's own account (reason, strategy, jobs ahead...): `placement.*`."""
        if self._tracer is None:
            return
        parent = self._parent(job)
        now = time.time()
        queued_at = job.history[-1].get("at", job.created_at) if job.history else job.created_at
        wait = self._tracer.start_span("job.queue_wait", context=parent, start_time=_ns(min(queued_at, since)),
                                       attributes={"job.id": job.id, "job.attempt": job.attempt})
        wait.end(end_time=_ns(since))
        attributes = {f"placement.{key}": value for key, value in _clean(details).items() if key != "instance"}
        attributes.update({"job.id": job.id, "comfyui.instance": instance, "placement.candidates": list(candidates)})
        if avoided is not None:
            attributes["placement.avoided"] = avoided  # where its last attempt failed
        placement = self._tracer.start_span("job.placement", context=parent, start_time=_ns(since),
                                            attributes=attributes)
        placement.end(end_time=_ns(max(now, since)))

    def attempt(self, job: Job, instance: str, work: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
        """`work` (one attempt of `job` on `instance`) inside a `job.attempt` span; `work` itself when off."""
        if self._tracer is None:
            return work
        return self._attempt(self._tracer, job, instance, work)

    async def _attempt(self, tracer: otel_trace.Tracer, job: Job, instance: str,
                       work: Coroutine[Any, Any, T]) -> T:
        attributes: dict[str, Any] = {"job.id": job.id, "job.type": job.type, "job.attempt": job.attempt,
                                      "comfyui.instance": instance}
        with tracer.start_as_current_span("job.attempt", context=self._parent(job), attributes=attributes):
            token = _ATTEMPT_TRACER.set(tracer)
            try:
                return await work
            finally:
                _ATTEMPT_TRACER.reset(token)

    def job_span(self, job: Job, name: str, **attributes: Any) -> AbstractContextManager[Step]:
        """A span of `job` outside its attempts (webhook delivery), a child of its `job.submit`."""
        if self._tracer is None:
            return _NO_STEP_CONTEXT
        return self._job_span(self._tracer, job, name, attributes)

    @contextmanager
    def _job_span(self, tracer: otel_trace.Tracer, job: Job, name: str,
                  attributes: Mapping[str, Any]) -> Iterator[Step]:
        with tracer.start_as_current_span(name, context=self._parent(job),
                                          attributes={"job.id": job.id, **_clean(attributes)}) as span:
            yield Step(span)

    @staticmethod
    def _parent(job: Job) -> Context:
        return _PROPAGATOR.extract(job.trace_context)
