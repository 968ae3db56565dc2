from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from support.redis import connect_redis, drop_prefix


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A fresh key prefix on the real Redis server; every key under it is deleted afterwards."""
    prefix = f"cgtest-{uuid.uuid4().hex[:10]}"
    client = await connect_redis()
    yield prefix
    await drop_prefix(client, prefix)
    await client.aclose()
