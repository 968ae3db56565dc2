"""Webhooks: a job's status is POSTed to its callback_url when it finishes, signed as Standard
Webhooks say, retried off the request path, each attempt in the job's info; destinations that are
(or resolve to) internal addresses are refused at submit without a connection; no redirects."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
from pathlib import Path

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from comfy_gateway.access import DestinationPolicy
from comfy_gateway.access.signing import WebhookSigner
from comfy_gateway.background import TaskOwner
from comfy_gateway.jobs.model import Job
from comfy_gateway.jobs.sqlite import SqliteJobStore
from comfy_gateway.webhooks import WebhookSender
from support.gateway import gateway_settings, hosts_of, running_gateway
from support.images import png

IMAGE = {"imageFile": ("a.png", png(16, 16), "image/png")}
SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes!!!!").decode()


class Receiver:
    """A real HTTP server on loopback that records what it is sent; fails the first `fail` posts."""

    def __init__(self, fail: int = 0, redirect: bool = False) -> None:
        self.posts: list[tuple[bytes, dict[str, str]]] = []
        self.fail = fail
        self.redirect = redirect
        self.arrived = asyncio.Event()
        self.redirected_to = 0

    async def handle(self, request: web.Request) -> web.Response:
        if self.redirect:
            raise web.HTTPTemporaryRedirect("/elsewhere")
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=500)
        self.posts.append((await request.read(), dict(request.headers)))
        self.arrived.set()
        return web.Response(status=204)

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected_to += 1
        return web.Response(status=204)

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        app.router.add_post("/elsewhere", self.elsewhere)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/hook"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


async def test_deliveries_are_signed_retried_and_recorded_in_the_job(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    receiver = Receiver(fail=1)
    settings = gateway_settings(tmp_path, hosts_of(fakes), webhook_secret=SECRET, webhook_allow_hosts="127.0.0.1")
    async with receiver as hook, running_gateway(settings) as gw:
        ok = (await gw.client.post("/api/async/upscale-image", params={"callback_url": hook}, files=IMAGE)).json()
        async with asyncio.timeout(15):
            await receiver.arrived.wait()
        fakes[0].fail_next(1, message="boom")
        receiver.arrived.clear()
        bad = (await gw.client.post("/api/async/upscale-image", files=IMAGE, data={"callback_url": hook})).json()
        async with asyncio.timeout(15):
            await receiver.arrived.wait()
        info = (await gw.client.get(f"/api/jobs/{ok['job_id']}/info")).json()
    (first_raw, first_headers), (second_raw, second_headers) = receiver.posts
    first = Webhook(SECRET).verify(first_raw, first_headers)  # raises unless the signature is right
    second = Webhook(SECRET).verify(second_raw, second_headers)
    assert (first["job_id"], first["status"], first["result_url"]) == (
        ok["job_id"], "completed", f"/api/jobs/{ok['job_id']}/result")
    assert (second["job_id"], second["status"]) == (bad["job_id"], "failed") and "boom" in second["error"]
    assert second["error_details"]["code"] == "workflow_failed"
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + base64.b64encode(b"another secret").decode()).verify(first_raw, first_headers)
    tries = info["webhook_deliveries"]
    assert [(t["attempt"], t["ok"], t.get("status")) for t in tries] == [(1, False, 500), (2, True, 204)]
    assert tries[0]["webhook_id"] == tries[1]["webhook_id"] == first_headers["webhook-id"]  # one message


def loopback_name() -> str:
    """A name other than `localhost` that resolves to 127.0.0.1 on this machine (its host name, mostly)."""
    for name in (socket.gethostname(), "localhost.localdomain", "ip6-localhost"):
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            continue
        if "127.0.0.1" in addresses:
            return name
    pytest.skip("no name but localhost resolves to 127.0.0.1 here")


class Listener:
    """Counts TCP connections on 127.0.0.1 and ::1, one port: proof that nothing connected."""

    def __init__(self) -> None:
        self.connections = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.servers = [self.server]
        if socket.has_ipv6:
            with contextlib.suppress(OSError):  # no IPv6 loopback here: [::1] is still refused at submit
                self.servers.append(await asyncio.start_server(self._accept, "::1", port))
        return port

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()


async def refused_without_a_connection(fake_servers, tmp_path, urls: list[str]) -> list[dict]:
    """Submit a job per callback URL; every one must get 422 and leave no job and no connection."""
    fakes = await fake_servers(1)
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes))) as gw:
        answers = [await gw.client.post("/api/async/upscale-image", params={"callback_url": url}, files=IMAGE)
                   for url in urls]
        listed = (await gw.client.get("/api/jobs/list")).json()
    assert [a.status_code for a in answers] == [422] * len(urls), [a.text for a in answers]
    assert all(a.json()["code"] == "destination_refused" for a in answers)
    assert listed["count"] == 0  # no job was created for any of them
    return [a.json() for a in answers]


async def test_internal_destinations_are_refused_at_submit_without_a_connection(fake_servers, tmp_path):
    listener = Listener()
    async with listener as port:
        answers = await refused_without_a_connection(fake_servers, tmp_path, [
            "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", f"http://[::1]:{port}/hook",
            f"http://localhost:{port}/hook", f"http://2130706433:{port}/hook", f"http://0x7f.1:{port}/hook",
            f"http://[::ffff:127.0.0.1]:{port}/hook", "file:///etc/passwd", f"gopher://127.0.0.1:{port}/_",
            "http://100.100.100.200/", "http://192.168.1.1/", "http://[fd00::1]/",
        ])
    assert "WEBHOOK_ALLOW_HOSTS" in answers[3]["error"]
    assert listener.connections == 0


async def test_a_name_that_resolves_to_loopback_is_refused_without_a_connection(fake_servers, tmp_path):
    listener = Listener()
    async with listener as port:
        await refused_without_a_connection(fake_servers, tmp_path, [f"http://{loopback_name()}:{port}/hook"])
    assert listener.connections == 0


async def deliver_once(tmp_path: Path, url: str, policy: DestinationPolicy) -> Job:
    """One delivery by a WebhookSender over a real store, retried once, quickly."""
    async with SqliteJobStore(tmp_path / "jobs.db") as store:
        await store.create(Job(id="j1", type="upscale"))
        tasks = TaskOwner(lambda *a, **k: None)
        sender = WebhookSender(store, tasks, _NoLog(), body=lambda job: {"job_id": job.id}, policy=policy,
                               signer=None, timeout_s=5, retry_delays_s=(0.05,))
        async with sender:
            await sender.deliver(url, "j1")
        await tasks.aclose()
        job = await store.get("j1")
    assert job is not None
    return job


class _NoLog:
    def warning(self, *args: object, **kwargs: object) -> None:
        return None


async def test_redirects_are_not_followed(tmp_path):
    receiver = Receiver(redirect=True)
    async with receiver as hook:
        job = await deliver_once(tmp_path, hook, DestinationPolicy(["127.0.0.1"]))
    assert receiver.redirected_to == 0
    assert [(t["ok"], t["status"]) for t in job.webhook_deliveries] == [(False, 307), (False, 307)]
    assert "redirects are not followed" in job.webhook_deliveries[0]["error"]


async def test_a_destination_refused_at_delivery_is_not_retried_or_connected_to(tmp_path):
    listener = Listener()
    async with listener as port:  # the policy allowed it at submit; now it does not (e.g. a changed list)
        job = await deliver_once(tmp_path, f"http://localhost:{port}/hook", DestinationPolicy())
    assert listener.connections == 0
    assert [t["ok"] for t in job.webhook_deliveries] == [False]
    assert "non-public" in job.webhook_deliveries[0]["error"]


async def test_resume_takes_up_only_the_deliveries_still_owed(tmp_path):
    """After a restart: a delivery cut short goes on under its webhook-id from the next attempt; one
    that arrived, was refused for good or ran out of attempts is left alone, as is a job without URL."""
    receiver = Receiver()
    async with receiver as hook, SqliteJobStore(tmp_path / "jobs.db") as store:
        histories = {"owed": [{"attempt": 1, "ok": False, "webhook_id": "msg_owed"}],
                     "never-tried": [],
                     "delivered": [{"attempt": 1, "ok": True, "webhook_id": "msg_d"}],
                     "refused": [{"attempt": 1, "ok": False, "final": True, "webhook_id": "msg_r"}],
                     "exhausted": [{"attempt": n, "ok": False, "webhook_id": "msg_x"} for n in (1, 2)]}
        for job_id, attempts in {**histories, "no-url": []}.items():
            params = {} if job_id == "no-url" else {"callback_url": hook}
            await store.create(Job(id=job_id, type="upscale", params=params))
            claimed = await store.claim_job(job_id, "w", 30)
            assert claimed is not None and await store.complete(job_id, claimed.attempt, "blob", {})
            for attempt in attempts:
                await store.add_webhook_attempt(job_id, attempt)
        tasks = TaskOwner(lambda *a, **k: None)
        sender = WebhookSender(store, tasks, _NoLog(), body=lambda job: {"job_id": job.id},
                               policy=DestinationPolicy(["127.0.0.1"]), signer=WebhookSigner(SECRET),
                               timeout_s=5, retry_delays_s=(0.05,))
        async with sender:
            assert await sender.resume() == 2
            async with asyncio.timeout(10):
                while len(receiver.posts) < 2:
                    await asyncio.sleep(0.02)
            await tasks.aclose()
        owed, fresh = await store.get("owed"), await store.get("never-tried")
    by_job = {json.loads(body)["job_id"]: headers for body, headers in receiver.posts}
    assert set(by_job) == {"owed", "never-tried"}
    assert by_job["owed"]["webhook-id"] == "msg_owed"  # the message of the attempts before
    assert owed is not None and [d["attempt"] for d in owed.webhook_deliveries] == [1, 2]
    assert owed.webhook_deliveries[-1]["ok"]
    assert fresh is not None and [d["attempt"] for d in fresh.webhook_deliveries] == [1]
