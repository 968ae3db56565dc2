"""With Redis: a start that fails half-way stops what it started, and job updates cross replicas."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import pytest

from comfy_gateway.app import create_app
from comfy_gateway.scaleout import bus
from comfy_gateway.scaleout.bus import RedisJobEvents
from scaleout.test_replicas_inprocess import two_replicas
from support.gateway import gateway_settings
from support.redis import REDIS_URL, connect_redis
from support.tally import submit
from support.waiting import eventually

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


@contextlib.asynccontextmanager
async def _replica_events(client, prefix: str, replica: str) -> AsyncIterator[RedisJobEvents]:
    events = RedisJobEvents(client, prefix, replica, logging.getLogger("test-redis-events"))
    await events.open()
    try:
        yield events
    finally:
        await events.close()


async def test_a_lone_replica_publishes_nothing_and_hears_a_new_one_at_once(redis_prefix, monkeypatch):
    monkeypatch.setattr(bus, "PEER_CHECK_S", 0.05)
    client = await connect_redis()
    watcher = client.pubsub()
    await watcher.psubscribe(f"{redis_prefix}:events:*")  # sees every message; not a subscriber NUMSUB counts
    try:
        async with _replica_events(client, redis_prefix, "replica-a") as a:
            await eventually(lambda: a.alone, what="replica a to find itself alone")
            monkeypatch.setattr(bus, "PEER_CHECK_S", 60.0)  # from now on only a hello can tell it otherwise
            await asyncio.sleep(0.2)
            await watcher.get_message(timeout=0.1)  # the psubscribe confirmation
            while await watcher.get_message(timeout=0.1) is not None:  # a's hello, before it was alone
                pass
            await a.publish_finished("job-1")
            await a.publish_changed("job-1")
            await a.announce_work()
            assert await watcher.get_message(timeout=0.3) is None  # nobody to hear: nothing sent

            async with _replica_events(client, redis_prefix, "replica-b") as b:
                await eventually(lambda: not a.alone, timeout=1.0, what="replica a to hear b's hello")
                finished = b.subscribe("job-2")
                await a.publish_finished("job-2")
                await asyncio.wait_for(finished.wait(), timeout=2.0)
    finally:
        await watcher.aclose()
        await client.aclose()


async def test_a_replica_that_lost_its_subscription_says_hello_again(redis_prefix, monkeypatch):
    """While b's subscription is down, a may find itself alone (Redis counts one subscriber); b's
    hello once it has subscribed again tells a at once, long before a's next question."""
    monkeypatch.setattr(bus, "PEER_CHECK_S", 60.0)
    client = await connect_redis()
    watcher = client.pubsub()
    await watcher.psubscribe(f"{redis_prefix}:events:work")
    try:
        async with _replica_events(client, redis_prefix, "replica-a") as a, \
                _replica_events(client, redis_prefix, "replica-b") as b:
            await watcher.get_message(timeout=0.5)  # the psubscribe confirmation
            while await watcher.get_message(timeout=0.2) is not None:  # the hellos of the start
                pass
            a.alone = True  # what a's question would have answered while b was away
            await b._pubsub.connection.disconnect()
            hello = None
            async with asyncio.timeout(5):
                while hello is None:
                    hello = await watcher.get_message(timeout=0.5)
            assert hello["data"] == b"replica-b"
            await eventually(lambda: not a.alone, timeout=1.0, what="replica a to hear b's hello again")
    finally:
        await watcher.aclose()
        await client.aclose()
