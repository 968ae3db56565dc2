"""With Redis: a start that fails half-way stops what it started, and job updates cross replicas."""

from __future__ import annotations

import asyncio
import json

import pytest

from comfy_gateway.app import create_app
from scaleout.test_replicas_inprocess import two_replicas
from support.gateway import gateway_settings
from support.redis import REDIS_URL
from support.tally import submit

pytestmark = pytest.mark.redis


async def test_a_start_that_fails_leaves_no_task_running(tmp_path, redis_prefix):
    # Redis opens (its heartbeat and metrics tasks could start), then a server address no client
    # can be made for stops the start.
    settings = gateway_settings(tmp_path, "[::1:8188", job_store="redis", redis_url=REDIS_URL,
                                redis_prefix=redis_prefix, replica_id="replica-a")
    app = create_app(settings)
    before = asyncio.all_tasks()
    with pytest.raises(ValueError, match="IPv6"):
        async with app.router.lifespan_context(app):
            pass
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == [], [t.get_name() for t in left]


async def test_the_event_stream_of_one_replica_follows_a_job_running_on_another(
        fake_servers, tmp_path, redis_prefix):
    fakes = await fake_servers(1, service_time=1.5)
    async with two_replicas(tmp_path, fakes, redis_prefix) as (a, b):
        await b.client.post(f"/api/circuit-breakers/{fakes[0].host_port}/open")  # only a runs jobs
        job_id = await submit(a.client)
        events = []
        async with b.client.stream("GET", f"/api/jobs/{job_id}/events") as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
    progress = [e["progress_percentage"] for e in events]
    assert events[-1]["status"] == "completed"
    assert "processing" in [e["status"] for e in events] and any(0 < p < 100 for p in progress)
    assert progress == sorted(progress)
