"""Scheduling end to end: concurrency limits, spreading, many jobs at once, restart survival."""

from __future__ import annotations

import asyncio

import pytest

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.tally import submit
from support.waiting import eventually


async def test_fifty_async_jobs_complete_within_limits_on_both_servers(fake_servers, tmp_path):
    fakes = await fake_servers(2, service_time=0.02)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        ids = await asyncio.gather(*(submit(gw.client, "upscale-image" if n % 2 else "remove-background")
                                     for n in range(50)))
        results = await asyncio.gather(*(gw.wait_job(i, timeout=60) for i in ids))
    assert [r["status"] for r in results] == ["completed"] * 50
    for fake in fakes:
        stats = fake.stats()
        assert stats["prompts_received"] > 5  # spread over both
        assert stats["peak_queue_depth"] <= 2  # MAX_JOBS_PER_INSTANCE
    assert sum(f.stats()["prompts_received"] for f in fakes) == 50


async def test_global_limit_holds_below_the_sum_of_instance_limits(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    for fake in fakes:
        fake.pause()
    settings = gateway_settings(tmp_path, hosts_of(fakes), max_concurrent_jobs=3, max_jobs_per_instance=2)
    async with running_gateway(settings) as gw:
        ids = [await submit(gw.client) for _ in range(8)]
        await eventually(lambda: sum(f.stats()["queue_depth"] for f in fakes) == 3)
        await asyncio.sleep(0.3)  # nothing more arrives while all three slots are taken
        assert sum(f.stats()["queue_depth"] for f in fakes) == 3
        assert max(f.stats()["queue_depth"] for f in fakes) <= 2
        stats = (await gw.client.get("/api/jobs/stats")).json()["by_status"]
        assert stats["processing"] == 3 and stats["pending"] == 5
        for fake in fakes:
            fake.resume()
        results = await asyncio.gather(*(gw.wait_job(i, timeout=30) for i in ids))
    assert all(r["status"] == "completed" for r in results)
    assert max(f.stats()["peak_queue_depth"] for f in fakes) <= 2


async def test_dispatch_is_event_driven_not_a_poll(fake_servers, tmp_path):
    """With a 60 s safety sweep, a job still reaches the server at once."""
    fakes = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), job_processing_interval=60_000)) as gw:
        job_id = await submit(gw.client)
        status = await gw.wait_job(job_id, timeout=5)
    assert status["status"] == "completed"


async def test_every_answering_server_has_an_event_socket_before_its_first_job(fake_servers, tmp_path):
    """The first prompt sent to a server does not wait for a WebSocket handshake; a server that
    does not answer its probe gets no socket."""
    fakes = await fake_servers(3)
    await fakes[2].stop()
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await eventually(lambda: [f.stats()["sockets_open"] for f in fakes[:2]] == [1, 1],
                         what="a socket to each server that answers")
        hubs = {i.name: i.hub for i in gw.gateway.pool}
        assert hubs[fakes[2].host_port].sockets_open == 0
        assert sum(f.stats()["prompts_received"] for f in fakes[:2]) == 0


@pytest.mark.slow
async def test_jobs_survive_a_gateway_restart(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    fake = fakes[0]
    fake.pause()
    settings = gateway_settings(tmp_path, hosts_of(fakes), max_concurrent_jobs=1, max_jobs_per_instance=1,
                             shutdown_grace=0)
    async with running_gateway(settings) as gw:
        ids = [await submit(gw.client) for _ in range(3)]
        await eventually(lambda: fake.stats()["queue_depth"] == 1)
        by_status = (await gw.client.get("/api/jobs/stats")).json()["by_status"]
        assert by_status == {"pending": 2, "processing": 1, "completed": 0, "failed": 0}
    # The gateway is gone with one prompt queued at the server and two jobs never sent.
    fake.resume()
    async with running_gateway(settings) as gw:
        results = await asyncio.gather(*(gw.wait_job(i, timeout=20) for i in ids))
        infos = [(await gw.client.get(f"/api/jobs/{i}/info")).json() for i in ids]
    assert [r["status"] for r in results] == ["completed"] * 3
    assert fake.stats()["prompts_received"] == 3  # the running one was re-attached, not run again
    assert infos[0]["attempt"] == 2  # adopted by the new process
