"""Admission: past MAX_QUEUE_DEPTH, a key's max_queued_jobs or its requests_per_minute, 429 with
Retry-After (and eta_seconds from the throughput measured); in Redis mode the rate is global."""

from __future__ import annotations

import uuid

import httpx
import pytest

from support.gateway import RunningGateway, gateway_settings, hosts_of, running_gateway
from support.images import png
from support.keys import auth, write_keys
from support.redis import REDIS_URL, connect_redis, drop_prefix

UPLOAD = {"imageFile": ("a.png", png(16, 16), "image/png")}


async def submit(gw: RunningGateway, who: str | None = None) -> httpx.Response:
    return await gw.client.post("/api/async/upscale-image", files=UPLOAD, headers=auth(who))


async def submit_until_refused(gw: RunningGateway, who: str | None, most: int) -> tuple[int, httpx.Response]:
    for accepted in range(most):
        resp = await submit(gw, who)
        if resp.status_code != 202:
            return accepted, resp
    raise AssertionError(f"{most} submits and none refused")


def assert_429(resp: httpx.Response, code: str) -> dict:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert body["code"] == code and body["retry_after"] == int(resp.headers["retry-after"]) >= 1
    return body


async def test_the_gateway_queue_bound_answers_429_with_an_eta_from_throughput(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=0.3)
    settings = gateway_settings(tmp_path, hosts_of(fakes), max_queue_depth=3, max_concurrent_jobs=1,
                                max_jobs_per_instance=1)
    async with running_gateway(settings) as gw:
        for _ in range(2):  # something finished: a throughput to estimate from
            await gw.wait_job((await submit(gw)).json()["job_id"])
        accepted, refused = await submit_until_refused(gw, None, 8)
        pending = await gw.service.pending_count()
    assert 3 <= accepted <= 5 and pending == 3
    body = assert_429(refused, "queue_full")
    assert body["queue"] == "gateway" and body["limit"] == 3
    assert 0 < body["eta_seconds"] < 30  # ~0.3 s a job, one at a time: room again within a second or so


async def test_a_keys_queue_bound_holds_only_that_key(fake_servers, tmp_path):
    fakes = await fake_servers(1, service_time=0.3)
    keys = write_keys(tmp_path / "keys.toml", alice={"max_queued_jobs": 2})
    settings = gateway_settings(tmp_path, hosts_of(fakes), api_keys_file=keys, max_concurrent_jobs=1,
                                max_jobs_per_instance=1)
    async with running_gateway(settings) as gw:
        accepted, refused = await submit_until_refused(gw, "alice", 6)
        bob = [(await submit(gw, "bob")).status_code for _ in range(4)]
    assert 2 <= accepted <= 4
    body = assert_429(refused, "queue_full")
    assert body["queue"] == "key" and body["limit"] == 2
    assert bob == [202] * 4


async def test_requests_per_minute_is_a_token_bucket_per_key(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    keys = write_keys(tmp_path / "keys.toml", bob={"requests_per_minute": 3})
    async with running_gateway(gateway_settings(tmp_path, hosts_of(fakes), api_keys_file=keys)) as gw:
        bob = [await gw.client.get("/api/workflows", headers=auth("bob")) for _ in range(4)]
        alice = [(await gw.client.get("/api/workflows", headers=auth("alice"))).status_code for _ in range(4)]
        health = (await gw.client.get("/health", headers=auth("bob"))).status_code
    assert [r.status_code for r in bob[:3]] == [200, 200, 200]
    body = assert_429(bob[3], "rate_limited")
    assert body["limit"] == 3 and 0 < body["eta_seconds"] <= 20  # one token every 20 s
    assert alice == [200] * 4 and health == 200


@pytest.mark.redis
async def test_with_redis_the_rate_limit_is_shared_by_the_replicas(fake_servers, tmp_path):
    fakes = await fake_servers(1)
    keys = write_keys(tmp_path / "keys.toml", bob={"requests_per_minute": 3})
    client = await connect_redis()
    prefix = f"cgtest-{uuid.uuid4().hex[:10]}"
    common = {"api_keys_file": keys, "job_store": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix}
    try:
        async with (running_gateway(gateway_settings(tmp_path / "a", hosts_of(fakes), replica_id="a", **common)) as a,
                    running_gateway(gateway_settings(tmp_path / "b", hosts_of(fakes), replica_id="b", **common)) as b):
            codes = [(await gw.client.get("/api/workflows", headers=auth("bob"))).status_code for gw in (a, b, a, b)]
    finally:
        await drop_prefix(client, prefix)
        await client.aclose()
    assert codes == [200, 200, 200, 429]
