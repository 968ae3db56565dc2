"""Scheduling end to end: concurrency limits, spreading, many jobs at once, restart survival."""

from __future__ import annotations

import asyncio

import pytest

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.proxy import FaultProxy
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


def count_claims(store) -> list[bool]:
    """Each `claim_next` the dispatcher makes, as whether it took a job."""
    claims: list[bool] = []
    claim_next = store.claim_next

    async def counted(*args, **kwargs):
        claimed = await claim_next(*args, **kwargs)
        claims.append(claimed.job is not None)
        return claimed

    store.claim_next = counted
    return claims


async def test_a_freed_slot_looks_at_the_queue_only_if_a_job_may_be_waiting(fake_servers, tmp_path):
    """The claim that took the last pending job said so: the end of that job claims nothing. A job
    queued afterwards is still dispatched at once (the safety sweep is a minute away here)."""
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes), job_processing_interval=60_000,
                                health_check_interval=60_000)
    async with running_gateway(settings) as gw:
        await eventually(lambda: all(i.capabilities is not None for i in gw.gateway.pool),
                         what="the server's first probe and capabilities")
        # Reading the capabilities wakes the dispatcher (a job may wait for them): on a busy machine
        # its look at the empty queue can come after the poll above saw them. Counting starts after.
        await asyncio.sleep(0.2)
        claims = count_claims(gw.gateway.dispatcher.store)
        for _ in range(2):
            job_id = await submit(gw.client)
            assert (await gw.wait_job(job_id, timeout=5))["status"] == "completed"
        await asyncio.sleep(0.2)  # any claim after the second job's end would be in by now
    assert claims == [True, True]


async def test_a_job_given_back_after_a_failure_is_claimed_again_at_once(fake_servers, tmp_path):
    """Its first attempt's claim found the queue otherwise empty; its failure queues it again,
    and that is looked at without waiting for the minute-long safety sweep."""
    fakes = await fake_servers(2)
    fakes[1].set_service_time(0.5)  # both jobs are queued while the first runs: one goes to each server
    async with FaultProxy(fakes[0].url) as proxy:
        proxy.fail_prompts = True
        settings = gateway_settings(tmp_path, f"{proxy.host_port},{fakes[1].host_port}",
                                    job_processing_interval=60_000, health_check_interval=60_000)
        async with running_gateway(settings) as gw:
            await eventually(lambda: all(i.capabilities is not None for i in gw.gateway.pool),
                             what="both servers' first probe and capabilities")
            claims = count_claims(gw.gateway.dispatcher.store)
            ids = [await submit(gw.client) for _ in range(2)]  # the rotation sends one to the failing server
            results = await asyncio.gather(*(gw.wait_job(i, timeout=5) for i in ids))
    assert [r["status"] for r in results] == ["completed"] * 2
    assert proxy.failed_prompts >= 1
    assert claims.count(True) == 2 + proxy.failed_prompts


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
