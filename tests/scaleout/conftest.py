from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from support.redis import REDIS_URL


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A fresh key prefix on the real Redis server; every key under it is deleted afterwards."""
    prefix = f"cgtest-{uuid.uuid4().hex[:10]}"
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # the tests need a real server: say so plainly
        pytest.fail(f"Redis at {REDIS_URL} is required for the scale-out tests: {exc}")
    yield prefix
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()
