"""A job taken over by another replica (through Redis) stays in the trace its request started."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from comfy_gateway.observability.tracing import Tracing
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.redis import REDIS_URL
from support.tally import submit
from support.waiting import eventually

pytestmark = pytest.mark.redis


async def test_the_replica_that_adopts_a_job_continues_its_trace(fake_servers, tmp_path, redis_prefix):
    fakes = await fake_servers(1)
    first, second = InMemorySpanExporter(), InMemorySpanExporter()

    def replica(name: str):
        return gateway_settings(tmp_path / name, hosts_of(fakes), job_store="redis", redis_url=REDIS_URL,
                                redis_prefix=redis_prefix, replica_id=name, lease_duration=1_000,
                                shutdown_grace=200, job_cleanup_interval=1_000)

    fakes[0].pause()
    async with running_gateway(replica("replica-a"), tracing=Tracing.with_exporter(first)) as a:
        job_id = await submit(a.client)
        await eventually(lambda: len(fakes[0].stats()["prompts"]) == 1, 30, "the prompt on the server")
    # replica-a is gone with the prompt still queued; replica-b adopts the job once its lease ran out.
    async with running_gateway(replica("replica-b"), tracing=Tracing.with_exporter(second)) as b:
        fakes[0].resume()
        status = await b.wait_job(job_id, timeout=60)  # after the lease runs out; room for a loaded machine
        info = (await b.client.get(f"/api/jobs/{job_id}/info")).json()

    assert status["status"] == "completed"
    [submitted] = [s for s in first.get_finished_spans() if s.name == "job.submit"]
    assert info["trace_id"] == format(submitted.context.trace_id, "032x")
    [attempt] = [s for s in second.get_finished_spans() if s.name == "job.attempt"]
    assert attempt.context.trace_id == submitted.context.trace_id
    assert attempt.parent is not None and attempt.parent.span_id == submitted.context.span_id
    assert attempt.attributes["job.outcome"] == "completed"
