"""Fair share through the whole gateway: one tenant's backlog does not make another wait behind it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from support.gateway import gateway_settings, hosts_of, running_gateway
from support.keys import auth, write_keys
from support.redis import REDIS_URL, connect_redis, drop_prefix
from support.tally import submit


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def store_settings(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield {"job_store": "sqlite"}
        return
    client = await connect_redis()
    prefix = f"cgtest-{uuid.uuid4().hex[:10]}"
    try:
        yield {"job_store": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix}
    finally:
        await drop_prefix(client, prefix)
        await client.aclose()


async def test_a_tenant_queueing_after_a_backlog_finishes_before_it(fake_servers, tmp_path, store_settings):
    fakes = await fake_servers(1, service_time=0.05)
    keys = write_keys(tmp_path / "keys.toml")
    settings = gateway_settings(tmp_path, hosts_of(fakes), api_keys_file=keys, max_concurrent_jobs=1,
                                max_jobs_per_instance=1, **store_settings)
    async with running_gateway(settings) as gw:

        alice = [await submit(gw.client, headers=auth("alice")) for _ in range(40)]
        bob = [await submit(gw.client, headers=auth("bob")) for _ in range(4)]
        await asyncio.gather(*(gw.wait_job(job_id, timeout=60) for job_id in (*alice, *bob)))
        infos = (await gw.client.get("/api/jobs/list", params={"limit": 100}, headers=auth("admin"))).json()["jobs"]
    finished = {info["job_id"]: info["finished_at"] for info in infos}
    assert all(info["status"] == "completed" for info in infos) and len(finished) == 44
    tenth_last_of_alice = finished[alice[-10]]
    assert max(finished[job] for job in bob) < tenth_last_of_alice, (
        [finished[j] for j in bob], tenth_last_of_alice)
