"""The Redis server the Redis tests use (REDIS_URL; `.ci/run` starts one where none runs)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def connect_redis() -> Redis:
    """A client to the test Redis; fails (or skips with SKIP_REDIS_TESTS=1) when it is unreachable."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        reason = f"Redis unreachable at {REDIS_URL}: {type(exc).__name__}: {exc}"
        if os.environ.get("SKIP_REDIS_TESTS") == "1":
            pytest.skip(f"{reason} (SKIP_REDIS_TESTS=1)")
        pytest.fail(f"{reason}; start Redis or set SKIP_REDIS_TESTS=1 to skip Redis tests")
    return client


async def drop_prefix(client: Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A fresh key prefix on the real Redis server; every key under it is deleted afterwards."""
    prefix = f"cgtest-{uuid.uuid4().hex[:10]}"
    client = await connect_redis()
    yield prefix
    await drop_prefix(client, prefix)
    await client.aclose()
