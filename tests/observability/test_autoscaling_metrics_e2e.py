"""The series an autoscaler reads from /metrics: queue and demand per workflow, oldest wait, slots."""

from __future__ import annotations

import asyncio

from observability.helpers import REMOVE_BG, UPSCALE, sample_value, scrape, submit
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.waiting import eventually

P = "comfy_gateway_"


async def test_queue_demand_age_and_slots_follow_the_work(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    settings = gateway_settings(tmp_path, hosts_of(fakes), max_concurrent_jobs=3, max_jobs_per_instance=1)
    async with running_gateway(settings) as gw:
        idle = await scrape(gw)
        for fake in fakes:
            fake.pause()
        jobs = [await submit(gw, UPSCALE) for _ in range(3)] + [await submit(gw, REMOVE_BG)]

        async def two_running() -> bool:
            return sample_value((await scrape(gw))[P + "pool_slots_busy"]) == 2

        await eventually(two_running, 10, "both servers busy")
        await asyncio.sleep(0.2)  # so the oldest waiting job is visibly older than zero
        busy = await scrape(gw)
        await fakes[1].stop()
        await eventually(lambda: gw.gateway.pool.healthy_count() == 1, 10, "one server marked down")
        one_down = await scrape(gw)
        fakes[0].resume()
        await fakes[1].start()
        fakes[1].resume()
        await asyncio.gather(*(gw.wait_job(job) for job in jobs))
        done = await scrape(gw)

    for workflow in (UPSCALE, REMOVE_BG):  # every configured workflow is there from the start, at 0
        assert sample_value(idle[P + "queue_depth_by_workflow"], workflow=workflow) == 0
        assert sample_value(idle[P + "demand_by_workflow"], workflow=workflow) == 0
    assert sample_value(idle[P + "queue_oldest_pending_age_seconds"]) == 0
    assert sample_value(idle[P + "pool_slots"]) == 2  # two servers x 1, within MAX_CONCURRENT_JOBS=3
    assert sample_value(idle[P + "pool_slots_busy"]) == 0
    for fake in fakes:
        assert sample_value(idle[P + "instance_slots"], instance=fake.host_port) == 1

    # Two of the three upscales run (one per server); one upscale and the remove-bg wait.
    assert sample_value(busy[P + "queue_depth_by_workflow"], workflow=UPSCALE) == 1
    assert sample_value(busy[P + "queue_depth_by_workflow"], workflow=REMOVE_BG) == 1
    assert sample_value(busy[P + "demand_by_workflow"], workflow=UPSCALE) == 3
    assert sample_value(busy[P + "demand_by_workflow"], workflow=REMOVE_BG) == 1
    assert sample_value(busy[P + "queue_depth"]) == 2
    assert sample_value(busy[P + "queue_oldest_pending_age_seconds"]) >= 0.2
    assert sample_value(one_down[P + "pool_slots"]) == 1

    assert sample_value(done[P + "demand_by_workflow"], workflow=UPSCALE) == 0
    assert sample_value(done[P + "queue_oldest_pending_age_seconds"]) == 0
    assert sample_value(done[P + "pool_slots_busy"]) == 0
