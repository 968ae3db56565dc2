"""Readiness over a real SQLite store and a real (unconnected) server pool."""

from __future__ import annotations

import aiohttp

from comfy_gateway.comfyui.instance import InstancePool
from comfy_gateway.jobs.model import Job
from comfy_gateway.jobs.sqlite import SqliteJobStore
from comfy_gateway.readiness import check_readiness


def pool_of(session: aiohttp.ClientSession) -> InstancePool:
    return InstancePool(("127.0.0.1:1",), base_url=lambda h: f"http://{h}", session=session, max_connections=1)


async def test_a_store_that_does_not_answer_makes_the_replica_not_ready(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.db")
    await store.open()
    await store.close()
    async with aiohttp.ClientSession() as session:
        result = await check_readiness(store, pool_of(session), admitting=True, max_queue_depth=0)
    assert not result.ready
    assert result.checks["store"] == "unreachable"
    assert result.reasons == ["the job store does not answer (RuntimeError)"]


async def test_the_queue_bound_counts_pending_jobs(tmp_path):
    async with SqliteJobStore(tmp_path / "jobs.db") as store, aiohttp.ClientSession() as session:
        pool = pool_of(session)
        for n in range(3):
            await store.create(Job(id=f"j{n}", type="upscale-image"))
        below = await check_readiness(store, pool, admitting=True, max_queue_depth=4)
        at = await check_readiness(store, pool, admitting=True, max_queue_depth=3)
        unbounded = await check_readiness(store, pool, admitting=True, max_queue_depth=0)
    assert below.ready and unbounded.ready
    assert at.body() == {"status": "not_ready", "reasons": ["the queue is full (3 of 3 pending)"], "checks": {
        "admitting": True, "servers": {"healthy": 1, "total": 1}, "store": "ok", "queue": {"pending": 3, "limit": 3}}}


async def test_a_current_storage_fault_makes_the_replica_not_ready(tmp_path):
    async with SqliteJobStore(tmp_path / "jobs.db") as store, aiohttp.ClientSession() as session:
        result = await check_readiness(store, pool_of(session), admitting=True, max_queue_depth=0,
                                       storage_fault="the job store has no space left; retry later")
    assert not result.ready
    assert result.checks["store"] == "failing"
    assert result.reasons == ["the job store has no space left; retry later"]
