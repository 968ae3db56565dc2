"""RedisJobStore specifics: indexes are cleaned up, a caller's client is left open."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from comfy_gateway.jobs.model import Job
from comfy_gateway.jobs.redis_store import RedisJobStore
from support.redis import connect_redis

pytestmark = pytest.mark.redis


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    redis = await connect_redis()
    yield redis
    await redis.aclose()


async def keys_under(client: Redis, prefix: str) -> list[str]:
    return sorted([k.decode() async for k in client.scan_iter(match=f"{prefix}:*")])


async def test_deleting_every_job_leaves_no_keys(client: Redis) -> None:
    prefix = f"cgtest:{uuid.uuid4().hex}"
    try:
        async with RedisJobStore(client, prefix=prefix) as store:
            for i, type_ in enumerate(["a", "b", "a", "c"]):
                await store.create(Job(id=f"j{i}", type=type_, created_at=1000.0 + i))
            first = await store.claim_job("j0", "w", 30, "gpu-1")
            second = await store.claim_job("j1", "w", 30, "gpu-2")
            await store.claim_job("j2", "w", 30, "gpu-1")
            assert first is not None and second is not None
            assert await store.complete("j0", first.attempt, "r", {})
            assert await store.requeue("j1", second.attempt, {"message": "x"})
            assert await store.fail("j3", None, {"message": "y"})
            assert await keys_under(client, prefix)
            for i in range(4):
                assert await store.delete(f"j{i}") is not None
            assert await keys_under(client, prefix) == []
        assert await client.ping()  # the caller's client stays open
    finally:
        leftover = await keys_under(client, prefix)
        if leftover:
            await client.delete(*leftover)


async def test_jobs_queued_before_tenants_existed_are_claimed_after_an_upgrade(client: Redis) -> None:
    prefix = f"cgtest:{uuid.uuid4().hex}"
    try:
        async with RedisJobStore(client, prefix=prefix) as store:
            for i in range(3):
                await store.create(Job(id=f"j{i}", type="a", created_at=1000.0 + i))
            assert await store.claim_job("j0", "w", 30) is not None
        # What a gateway of the previous version left: no tenant field, no tenant indexes.
        for i in range(3):
            await client.hdel(f"{prefix}:job:j{i}", "tenant", "priority", "webhook_deliveries")
        await client.delete(f"{prefix}:tenants", f"{prefix}:tqueue:anonymous", f"{prefix}:trunning:anonymous")
        async with RedisJobStore(client, prefix=prefix) as store:
            assert await store.pending_count("anonymous") == 2
            capped = await store.claim("w", 30, caps={"anonymous": 1})
            assert capped is None  # j0 still runs and counts against the cap
            claimed = [await store.claim("w", 30) for _ in range(3)]
            assert [job.id if job else None for job in claimed] == ["j1", "j2", None]
            assert claimed[0] is not None and claimed[0].tenant == "anonymous"
    finally:
        leftover = await keys_under(client, prefix)
        if leftover:
            await client.delete(*leftover)
