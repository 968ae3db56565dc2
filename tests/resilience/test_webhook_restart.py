"""A webhook delivery owed at shutdown is taken up by the next process: the real `comfy-gateway
serve` is stopped with SIGTERM between two attempts, started again on the same data, and the
delivery arrives, signed, under the webhook-id of the attempts before the restart."""

from __future__ import annotations

import asyncio
import base64
import json
import signal

import httpx
import pytest
from standardwebhooks import Webhook

from support.images import png
from support.loopback import LoopbackReceiver
from support.processes import processes, start_fake, start_gateway
from support.waiting import eventually

pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes!!!!").decode()
REFUSED = 2  # the receiver answers 503 to this many posts, then 204


async def test_a_delivery_pending_at_sigterm_arrives_after_the_restart_with_the_same_webhook_id(tmp_path):
    receiver = LoopbackReceiver(lambda _: (503, b"", "text/plain") if len(receiver.posts) <= REFUSED
                                else (204, b"", "text/plain"))
    data = tmp_path / "data"
    env = {"webhook_secret": SECRET, "webhook_allow_hosts": "127.0.0.1"}
    async with receiver as base:
        hook = f"{base}/hook"
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
            assert 1 <= before_restart <= REFUSED  # not delivered by the first process

            second = start_gateway(data, fake.host_port, **env)
            procs.append(second)
            await eventually(lambda: len(receiver.posts) > REFUSED, timeout=30, what="the delivery after the restart")
            async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
                info = (await client.get(f"/api/jobs/{job_id}/info")).json()

    print(f"\nattempts before the restart={before_restart}, in all={len(receiver.posts)}")
    delivered = receiver.posts[REFUSED]
    assert len({post.headers["webhook-id"] for post in receiver.posts}) == 1  # one message, across both processes
    Webhook(SECRET).verify(delivered.body, delivered.headers)  # raises on a bad signature
    assert json.loads(delivered.body)["job_id"] == job_id
    deliveries = info["webhook_deliveries"]
    assert [d["attempt"] for d in deliveries] == list(range(1, REFUSED + 2))
    assert deliveries[-1]["ok"] and not any(d["ok"] for d in deliveries[:-1])
