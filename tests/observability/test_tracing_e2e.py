"""OpenTelemetry traces of a real gateway: one trace per job, in order, with the right parents."""

from __future__ import annotations

import asyncio

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from comfy_gateway.access import ANONYMOUS
from comfy_gateway.observability.tracing import Tracing
from observability.helpers import UPSCALE, log_lines
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png
from support.loopback import LoopbackReceiver
from support.waiting import eventually

IMAGE = {"imageFile": ("a.png", png(16, 16), "image/png")}
JOB_PATH = ["job.submit", "job.queue_wait", "job.placement", "job.attempt", "comfyui.upload", "comfyui.prompt",
            "comfyui.output_fetch", "job.store_result", "webhook.deliver"]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [s.name for s in spans]  # each step once
    return named


async def test_one_job_is_one_trace_from_request_to_webhook(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=0.3)
    exporter = InMemorySpanExporter()
    settings = gateway_settings(tmp_path, hosts_of(fakes), input_mode="upload", webhook_allow_hosts="127.0.0.1")
    async with LoopbackReceiver() as hook, running_gateway(settings, tracing=Tracing.with_exporter(exporter)) as gw:
        resp = await gw.client.post(f"/api/async/{UPSCALE}", files=IMAGE, params={"callback_url": f"{hook}/done"})
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        await gw.wait_job(job_id)
        info = (await gw.client.get(f"/api/jobs/{job_id}/info")).json()
        await eventually(lambda: any(s.name == "webhook.deliver" for s in exporter.get_finished_spans()), 10,
                         "the webhook delivery span")

    [submit] = [s for s in exporter.get_finished_spans() if s.attributes.get("job.id") == job_id
                and s.name == "job.submit"]
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == submit.context.trace_id]
    named = by_name(spans)
    assert set(named) == {*JOB_PATH, f"POST /api/async/{UPSCALE}"}
    http = named[f"POST /api/async/{UPSCALE}"]
    assert info["trace_id"] == format(http.context.trace_id, "032x")
    assert http.parent is None and http.kind.name == "SERVER"
    assert http.attributes["http.response.status_code"] == 202

    def parent_of(name: str) -> str:
        parent = named[name].parent
        assert parent is not None, name
        [match] = [s.name for s in spans if s.context.span_id == parent.span_id]
        return match

    assert parent_of("job.submit") == http.name
    for name in ("job.queue_wait", "job.placement", "job.attempt", "webhook.deliver"):
        assert parent_of(name) == "job.submit", name
    for name in ("comfyui.upload", "comfyui.prompt", "comfyui.output_fetch", "job.store_result"):
        assert parent_of(name) == "job.attempt", name
    starts = [named[name].start_time for name in JOB_PATH]
    assert starts == sorted(starts), list(zip(JOB_PATH, starts, strict=True))
    assert named["job.queue_wait"].end_time <= named["job.attempt"].start_time

    placement = named["job.placement"].attributes
    assert placement["comfyui.instance"] == fakes[0].host_port
    assert list(placement["placement.candidates"]) == [fakes[0].host_port]
    assert placement["placement.reason"] == info["placement"]["reason"]  # the placement's own account
    assert placement["placement.strategy"] == info["placement"]["strategy"]
    progress = [e.attributes["progress.percent"] for e in named["comfyui.prompt"].events if e.name == "progress"]
    assert progress and progress == sorted(progress) and progress[-1] == 100
    assert named["job.attempt"].attributes["job.outcome"] == "completed"
    assert named["webhook.deliver"].attributes["delivered"] is True

    # The job's own log lines carry its trace id, and so does the access line of its request.
    lines = log_lines(settings.logs_dir / "combined.log")
    job_lines = {line["message"] for line in lines if line.get("jobId") == job_id}
    assert {"Job started", "Job completed successfully"} <= job_lines
    for line in lines:
        if line.get("jobId") == job_id or line.get("path") == f"/api/async/{UPSCALE}":
            assert line["trace_id"] == info["trace_id"], line


async def test_a_client_traceparent_is_continued_and_a_failed_job_marks_its_attempt(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    exporter = InMemorySpanExporter()
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes)),
                               tracing=Tracing.with_exporter(exporter)) as gw:
        fakes[0].fail_next(1, message="boom")
        resp = await gw.client.post(f"/api/async/{UPSCALE}", files=IMAGE,
                                    headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"})
        job_id = resp.json()["job_id"]
        status = await gw.wait_job(job_id)
        info = (await gw.client.get(f"/api/jobs/{job_id}/info")).json()
        for probe in ("/live", "/ready", "/metrics"):
            assert (await gw.client.get(probe)).status_code == 200

    assert status["status"] == "failed"
    traced_paths = {s.attributes.get("http.route") for s in exporter.get_finished_spans()}
    assert "/api/jobs/{job_id}/info" in traced_paths and not traced_paths & {"/live", "/ready", "/metrics"}
    assert info["trace_id"] == CLIENT_TRACE
    spans = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == CLIENT_TRACE]
    named = by_name(spans)
    http = named[f"POST /api/async/{UPSCALE}"]
    assert http.parent is not None and format(http.parent.span_id, "016x") == CLIENT_PARENT
    assert http.parent.is_remote
    attempt = named["job.attempt"]
    assert attempt.status.status_code.name == "ERROR" and "boom" in (attempt.status.description or "")
    assert attempt.attributes["job.outcome"] == "failed"
    assert "comfyui.upload" not in named  # base64 input: the image travels inside the prompt


def otlp_answer(_: bytes) -> tuple[int, bytes, str]:
    return 200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"


async def test_spans_arrive_over_otlp_http_configured_by_otel_variables(fake_servers, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-under-test")
    fakes = await fake_servers(1)
    collector = LoopbackReceiver(otlp_answer)
    async with collector as url:
        settings = gateway_settings(tmp_path, hosts_of(fakes), otel_exporter_otlp_endpoint=url)
        assert settings.tracing_enabled
        async with running_gateway(settings) as gw:
            job_id = (await gw.client.post(f"/api/async/{UPSCALE}", files=IMAGE)).json()["job_id"]
            await gw.wait_job(job_id)
        # The gateway's close sends what its batch still held.
        await asyncio.wait_for(collector.arrived.wait(), 10)

    spans = []
    services: set[str] = set()
    for post in collector.posts:
        assert post.path == "/v1/traces" and post.content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest()
        request.ParseFromString(post.body)
        for resource_spans in request.resource_spans:
            services |= {a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"}
            spans += [span for scope in resource_spans.scope_spans for span in scope.spans]
    assert services == {"gateway-under-test"}
    [submit] = [span for span in spans if span.name == "job.submit"
                and any(a.key == "job.id" and a.value.string_value == job_id for a in span.attributes)]
    names = {span.name for span in spans if span.trace_id == submit.trace_id}
    assert names == {*JOB_PATH, f"POST /api/async/{UPSCALE}"} - {"comfyui.upload", "webhook.deliver"}


async def test_tracing_is_off_by_default_and_leaves_no_trace_in_the_job(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes))
    assert not settings.tracing_enabled
    async with running_gateway(settings) as gw:
        assert not gw.gateway.tracing.enabled and gw.gateway.tracing.provider is None
        job_id = (await gw.client.post(f"/api/async/{UPSCALE}", files=IMAGE)).json()["job_id"]
        await gw.wait_job(job_id)
        info = (await gw.client.get(f"/api/jobs/{job_id}/info")).json()
        job = await gw.service.get(job_id, ANONYMOUS)
    assert info["trace_id"] is None and job.trace_context == {}
    assert all("trace_id" not in line for line in log_lines(settings.logs_dir / "combined.log"))


async def test_a_job_resumed_after_a_restart_stays_in_its_trace(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    before, after = InMemorySpanExporter(), InMemorySpanExporter()
    settings = gateway_settings(tmp_path, hosts_of(fakes), shutdown_grace=200)
    fakes[0].pause()
    async with running_gateway(settings, tracing=Tracing.with_exporter(before)) as gw:
        job_id = (await gw.client.post(f"/api/async/{UPSCALE}", files=IMAGE)).json()["job_id"]
        await eventually(lambda: len(fakes[0].stats()["prompts"]) == 1, 30, "the prompt on the server")
    # The first process stopped with the job's prompt still queued on the server.
    async with running_gateway(settings, tracing=Tracing.with_exporter(after)) as gw:
        fakes[0].resume()
        status = await gw.wait_job(job_id)

    assert status["status"] == "completed"
    [submit] = [s for s in before.get_finished_spans() if s.name == "job.submit"]
    resumed = by_name([s for s in after.get_finished_spans() if s.context.trace_id == submit.context.trace_id])
    assert {"job.attempt", "comfyui.prompt", "comfyui.output_fetch", "job.store_result"} <= set(resumed)
    attempt = resumed["job.attempt"]
    assert attempt.parent is not None and attempt.parent.span_id == submit.context.span_id
    assert attempt.attributes["job.attempt"] == 2 and attempt.attributes["job.outcome"] == "completed"
    assert resumed["comfyui.prompt"].attributes["reattached"] is True
