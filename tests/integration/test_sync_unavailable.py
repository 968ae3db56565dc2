"""A sync request never hangs on a job that cannot start: it gets a 503 with Retry-After."""

from __future__ import annotations

import asyncio
import time

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png

IMAGE = {"imageFile": ("a.png", png(16, 16), "image/png")}


async def test_no_available_server_answers_503_at_once(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        for fake in fakes:
            assert (await gw.client.post(f"/api/circuit-breakers/{fake.host_port}/open")).status_code == 200
        started = time.monotonic()
        resp = await gw.client.post("/api/upscale-image", files=IMAGE)
        took = time.monotonic() - started
        assert resp.status_code == 503 and int(resp.headers["retry-after"]) >= 1
        assert "no healthy" in resp.json()["error"]
        assert took < 2.0
        # Async jobs are still accepted: they wait as pending until a server is back.
        queued = await gw.client.post("/api/async/upscale-image", files=IMAGE)
        assert queued.status_code == 202
        await gw.client.post(f"/api/circuit-breakers/{fakes[0].host_port}/close")
        assert (await gw.wait_job(queued.json()["job_id"]))["status"] == "completed"


async def test_sync_request_waiting_in_the_queue_is_withdrawn_when_draining(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    fakes[0].pause()
    settings = gateway_settings(tmp_path, hosts_of(fakes), max_concurrent_jobs=1, max_jobs_per_instance=1)
    async with running_gateway(settings) as gw:
        blocker = (await gw.client.post("/api/async/upscale-image", files=IMAGE)).json()["job_id"]
        sync = asyncio.create_task(gw.client.post("/api/upscale-image", files=IMAGE))
        async with asyncio.timeout(5):
            while (await gw.client.get("/api/jobs/stats")).json()["by_status"]["pending"] < 1:
                await asyncio.sleep(0.02)
        gw.gateway.begin_drain()
        resp = await asyncio.wait_for(sync, timeout=5)
        assert resp.status_code == 503
        assert resp.json()["code"] == "no_server" and "shutting down" in resp.json()["error"]
        assert (await gw.client.get(f"/api/jobs/{blocker}/status")).json()["status"] == "processing"
        assert (await gw.client.post("/api/async/upscale-image", files=IMAGE)).status_code == 503
        fakes[0].resume()
