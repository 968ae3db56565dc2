"""Tracing's switch (the standard OTEL_* variables) and its cost when off: nothing of the SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest

from comfy_gateway.jobs.model import Job
from comfy_gateway.observability.tracing import NO_STEP, Tracing, step, trace_id_of
from comfy_gateway.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(("values", "enabled", "endpoint"), [
    ({}, False, None),
    ({"otel_traces_exporter": "otlp"}, True, None),
    ({"otel_exporter_otlp_endpoint": "http://collector:4318/"}, True, "http://collector:4318/v1/traces"),
    ({"otel_exporter_otlp_endpoint": "http://c:4318", "otel_exporter_otlp_traces_endpoint": "http://t/x"}, True,
     "http://t/x"),
    ({"otel_exporter_otlp_endpoint": "http://c:4318", "otel_traces_exporter": "none"}, False, None),
    ({"otel_traces_exporter": "otlp", "otel_sdk_disabled": True}, False, None),
])
def test_the_otel_variables_turn_tracing_on_and_off(values, enabled, endpoint):
    s = settings(**values)
    assert s.tracing_enabled is enabled
    if enabled:
        assert s.otlp_traces_endpoint == endpoint


def test_the_variables_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    assert settings().tracing_enabled


async def test_off_means_the_same_no_op_objects_and_the_work_itself():
    off = Tracing.off()
    job = Job(id="j", type="t")

    async def work() -> int:
        return 7

    coro = work()
    assert off.attempt(job, "gpu-1", coro) is coro
    assert await coro == 7
    assert off.submitting(job) is off.job_span(job, "webhook.deliver") is step("comfyui.upload")
    with step("comfyui.prompt") as prompt:
        assert prompt is NO_STEP
        listener = print
        assert prompt.progress_listener(listener) is listener
    off.placed(job, "gpu-1", candidates=["gpu-1"], since=0.0, avoided=None, details={"reason": "r"})
    assert job.trace_context == {} and trace_id_of(job) is None


def test_a_gateway_with_tracing_off_never_imports_the_tracing_sdk_or_an_exporter():
    # (redis-py imports the OpenTelemetry metrics SDK by itself when it is installed.)
    code = ("import sys; from comfy_gateway.app import create_app; from comfy_gateway.settings import Settings; "
            "create_app(Settings(_env_file=None)); print(sorted(m for m in sys.modules "
            "if m.startswith(('opentelemetry.sdk.trace', 'opentelemetry.exporter'))))")
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def test_closing_twice_is_harmless_and_sends_what_was_buffered():
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing = Tracing.with_exporter(exporter, batch=True)
    job = Job(id="j", type="t")
    with tracing.submitting(job):
        pass
    assert exporter.get_finished_spans() == ()  # still in the batch
    await tracing.aclose()
    await tracing.aclose()
    assert [s.name for s in exporter.get_finished_spans()] == ["job.submit"]
    assert trace_id_of(job) == format(exporter.get_finished_spans()[0].context.trace_id, "032x")


def test_an_otlp_protocol_the_gateway_does_not_speak_is_refused_at_start_up():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="otel_exporter_otlp_protocol"):
        settings(otel_exporter_otlp_protocol="grpc")
    assert settings(otel_exporter_otlp_protocol="http/protobuf").otel_exporter_otlp_protocol == "http/protobuf"
