"""Placement with the Redis store: the claim takes only the job types its free servers should run."""

from __future__ import annotations

import asyncio

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.redis import REDIS_URL
from support.tally import submit, tally
from support.waiting import eventually


async def test_a_mixed_queue_on_redis_keeps_each_job_where_it_can_run(fake_servers, tmp_path, redis_prefix):
    (able,) = await fake_servers(1, service_time=0.05)
    (lacking,) = await fake_servers(1, service_time=0.05, without_nodes=["InspyrenetRembg"])
    settings = gateway_settings(tmp_path, hosts_of([able, lacking]), job_store="redis", redis_url=REDIS_URL,
                                redis_prefix=redis_prefix)
    async with running_gateway(settings) as gw:
        await eventually(lambda: all(i.capabilities is not None for i in gw.gateway.pool), what="capabilities")
        tasks = ["remove-background", "upscale-image"] * 10
        ids = await asyncio.gather(*(submit(gw.client, task) for task in tasks))
        await asyncio.gather(*(gw.wait_job(job_id, timeout=60) for job_id in ids))
        result = await tally(gw.client, ids)
        assert result.completed == 20, result.line()
        infos = [(await gw.client.get(f"/api/jobs/{job_id}/info")).json() for job_id in ids]
        on_lacking = {i["type"] for i in infos if i["comfyui_instance"] == lacking.host_port}
        assert on_lacking == {"upscale-image"}  # it took work, only work it can run
        assert all(i["placement"]["instance"] == i["comfyui_instance"] for i in infos)
        assert lacking.stats()["prompts_rejected"] == 0
