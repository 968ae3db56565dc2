"""A webhook delivery owed at shutdown is taken up by the next process: the real `comfy-gateway
serve` is stopped with SIGTERM between two attempts, started again on the same data, and the
delivery arrives, signed, under the webhook-id of the attempts before the restart."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time

import httpx
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from support.images import png
from support.processes import processes, start_fake, start_gateway
from support.waiting import eventually

pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes!!!!").decode()


class RefusingReceiver:
    """A loopback HTTP server that answers 503 to the first `refuse` posts and records every post."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.posts: list[tuple[float, int, bytes, dict[str, str]]] = []  # (when, status, body, headers)

    async def handle(self, request: web.Request) -> web.Response:
        status = 503 if len(self.posts) < self.refuse else 204
        self.posts.append((time.time(), status, await request.read(), dict(request.headers)))
        return web.Response(status=status)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"


async def test_a_delivery_pending_at_sigterm_arrives_after_the_restart_with_the_same_webhook_id(tmp_path):
    receiver = RefusingReceiver(refuse=2)
    hook = await receiver.start()
    data = tmp_path / "data"
    env = {"webhook_secret": SECRET, "webhook_allow_hosts": "127.0.0.1"}
    try:
        with processes() as procs:
            fake = start_fake(name="fake-0")
            procs.append(fake)
            first = start_gateway(data, fake.host_port, **env)
            procs.append(first)
            async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
                resp = await client.post("/api/async/upscale-image", params={"callback_url": hook},
                                         files={"imageFile": ("in.png", png(16, 16), "image/png")})
                assert resp.status_code == 202, resp.text
                job_id = resp.json()["job_id"]
                await eventually(lambda: len(receiver.posts) >= 1, timeout=30, what="the first attempt")
            first.signal(signal.SIGTERM)  # the next attempt is due a second after the first
            await asyncio.to_thread(first.wait_exit, 15)
            before_restart = len(receiver.posts)
            assert 1 <= before_restart <= 2 and all(status == 503 for _, status, _, _ in receiver.posts)

            restarted_at = time.time()
            second = start_gateway(data, fake.host_port, **env)
            procs.append(second)
            await eventually(lambda: any(s == 204 for _, s, _, _ in receiver.posts), timeout=30,
                             what="the delivery after the restart")
            async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
                info = (await client.get(f"/api/jobs/{job_id}/info")).json()
    finally:
        await receiver.runner.cleanup()

    when, status, body, headers = receiver.posts[-1]
    print(f"\nattempts before the restart={before_restart}, in all={len(receiver.posts)}; "
          f"delivered {when - restarted_at:.1f}s after the restart")
    assert status == 204 and when > restarted_at
    ids = {h["webhook-id"] for _, _, _, h in receiver.posts}
    assert len(ids) == 1, ids  # one message, across both processes
    Webhook(SECRET).verify(body, headers)  # raises on a bad signature
    assert json.loads(body)["job_id"] == job_id
    deliveries = info["webhook_deliveries"]
    assert [d["attempt"] for d in deliveries] == list(range(1, len(receiver.posts) + 1))
    assert deliveries[-1]["ok"] and not any(d["ok"] for d in deliveries[:-1])
