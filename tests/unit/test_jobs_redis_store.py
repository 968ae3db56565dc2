"""RedisJobStore specifics: indexes are cleaned up, a caller's client is left open."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from comfy_gateway.jobs.model import Job
from comfy_gateway.jobs.redis_store import RedisJobStore

pytestmark = pytest.mark.redis


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    redis = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        reason = f"Redis unreachable at {url}: {type(exc).__name__}: {exc}"
        if os.environ.get("SKIP_REDIS_TESTS") == "1":
            pytest.skip(f"{reason} (SKIP_REDIS_TESTS=1)")
        pytest.fail(f"{reason}; set SKIP_REDIS_TESTS=1 to skip Redis tests")
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
