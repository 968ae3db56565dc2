"""Webhooks: a job's status is POSTed to its callback_url when it finishes."""

from __future__ import annotations

import asyncio

from aiohttp import web

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png

IMAGE = {"imageFile": ("a.png", png(16, 16), "image/png")}


class Receiver:
    """A real HTTP server on loopback that records what it is sent; fails the first `fail` posts."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[dict] = []
        self.fail = fail
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500)
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.Response(status=204)

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def test_completed_and_failed_jobs_are_posted_to_their_callback(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    receiver = Receiver()
    async with receiver as hook, running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        ok = (await gw.client.post("/api/async/upscale-image", params={"callback_url": hook}, files=IMAGE)).json()
        async with asyncio.timeout(10):
            await receiver.arrived.wait()
        fakes[0].fail_next(1, message="boom")
        receiver.arrived.clear()
        bad = (await gw.client.post("/api/async/upscale-image", files=IMAGE, data={"callback_url": hook})).json()
        async with asyncio.timeout(10):
            await receiver.arrived.wait()
        no_hook = await gw.client.post("/api/async/upscale-image", files=IMAGE)
        await gw.wait_job(no_hook.json()["job_id"])
        rejected = await gw.client.post("/api/async/upscale-image", params={"callback_url": "ftp://x"}, files=IMAGE)
    first, second = receiver.bodies
    assert (first["job_id"], first["status"], first["result_url"]) == (
        ok["job_id"], "completed", f"/api/jobs/{ok['job_id']}/result")
    assert (second["job_id"], second["status"]) == (bad["job_id"], "failed")
    assert "boom" in second["error"] and second["error_details"]["code"] == "workflow_failed"
    assert len(receiver.bodies) == 2  # the job without a callback sent nothing
    assert rejected.status_code == 400 and "callback_url" in rejected.json()["error"]


async def test_delivery_is_retried_when_the_receiver_fails(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    receiver = Receiver(fail=1)
    async with receiver as hook, running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        await gw.client.post("/api/async/upscale-image", params={"callback_url": hook}, files=IMAGE)
        async with asyncio.timeout(10):
            await receiver.arrived.wait()
    assert receiver.fail == 0 and [b["status"] for b in receiver.bodies] == ["completed"]
