"""/live and /ready for Kubernetes: liveness never asks ComfyUI; readiness follows servers, queue, store."""

from __future__ import annotations

import asyncio

from observability.helpers import UPSCALE, submit, wait_status
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png
from support.waiting import eventually


async def test_ready_follows_the_servers_while_live_keeps_answering(fake_servers, tmp_path):
    fakes = await fake_servers(2)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        up = await wait_status(gw, "/ready", 200, "ready")
        await fakes[0].stop()
        await wait_status(gw, "/health", 503, "degraded")
        one_left = await gw.client.get("/ready")  # one healthy server is enough to take work
        await fakes[1].stop()
        down = await wait_status(gw, "/ready", 503, "not_ready")
        down_headers = (await gw.client.get("/ready")).headers
        live_while_down = await gw.client.get("/live")
        await fakes[1].start()
        back = await wait_status(gw, "/ready", 200, "ready", timeout=20)  # after the breaker's backoff

    assert up == {"status": "ready", "reasons": [], "checks": {
        "admitting": True, "servers": {"healthy": 2, "total": 2}, "store": "ok",
        "queue": {"pending": 0, "limit": None}}}
    assert one_left.status_code == 200 and one_left.json()["checks"]["servers"] == {"healthy": 1, "total": 2}
    assert down["reasons"] == ["no healthy ComfyUI server"]
    assert down["checks"]["servers"] == {"healthy": 0, "total": 2} and down["checks"]["store"] == "ok"
    assert down_headers["Retry-After"] == "5" and down_headers["content-type"] == "application/json"
    assert live_while_down.status_code == 200 and live_while_down.json() == {"status": "alive"}
    assert back["checks"]["servers"]["healthy"] == 1


async def test_ready_says_503_while_the_queue_is_full_and_200_once_it_drains(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    settings = gateway_settings(tmp_path, hosts_of(fakes), max_queue_depth=2, max_concurrent_jobs=1,
                                max_jobs_per_instance=1)
    async with running_gateway(settings) as gw:
        fakes[0].pause()
        jobs = [await submit(gw, UPSCALE)]
        await eventually(lambda: len(fakes[0].stats()["prompts"]) == 1, 10, "the first job on the server")
        jobs += [await submit(gw, UPSCALE) for _ in range(2)]  # the first runs (the server holds it), two wait
        full = await wait_status(gw, "/ready", 503, "not_ready")
        refused = await gw.client.post(f"/api/async/{UPSCALE}", files={"imageFile": ("a.png", png(8, 8), "image/png")})
        fakes[0].resume()
        await asyncio.gather(*(gw.wait_job(job) for job in jobs))
        drained = await wait_status(gw, "/ready", 200, "ready")

    assert full["reasons"] == ["the queue is full (2 of 2 pending)"]
    assert refused.status_code == 429 and refused.json()["code"] == "queue_full"  # admission agrees
    assert full["checks"]["queue"] == {"pending": 2, "limit": 2}
    assert drained["checks"]["queue"] == {"pending": 0, "limit": 2}


async def test_ready_says_503_while_draining(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await wait_status(gw, "/ready", 200, "ready")
        gw.gateway.begin_drain()
        draining = await gw.client.get("/ready")
        live = await gw.client.get("/live")
    assert draining.status_code == 503 and draining.json()["reasons"] == ["the gateway is shutting down"]
    assert live.status_code == 200
