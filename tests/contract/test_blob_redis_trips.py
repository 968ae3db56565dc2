"""RedisBlobStore's round trips to the real Redis: a small stream is one SET, a long one a few
pipelined trips, and each leaves one key with its TTL and no partial key behind."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Connection, Redis

from comfy_gateway.jobs.blob_redis import RedisBlobStore
from comfy_gateway.jobs.blobs import CHUNK_BYTES
from support.redis import REDIS_URL, connect_redis, drop_prefix

pytestmark = pytest.mark.redis


class CountingConnection(Connection):
    """Counts what is sent to the server: one write per command, or per pipeline."""

    sent = 0

    async def send_packed_command(self, command: object, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)  # type: ignore[arg-type]


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.fixture
async def counted() -> AsyncIterator[tuple[RedisBlobStore, Redis, str]]:
    await (await connect_redis()).aclose()  # fails or skips clearly when Redis is not there
    client = Redis.from_url(REDIS_URL, connection_class=CountingConnection)
    prefix = f"cgtest:{uuid.uuid4().hex}"
    try:
        async with RedisBlobStore(client, prefix, ttl_seconds=60) as blobs:
            await client.ping()  # the connection's own handshake is not counted below
            yield blobs, client, prefix
    finally:
        await drop_prefix(client, prefix)
        await client.aclose()


async def _keys(client: Redis, prefix: str) -> list[str]:
    return sorted([key.decode() async for key in client.scan_iter(match=f"{prefix}:*")])


async def test_a_stream_within_one_chunk_is_one_set_with_its_ttl(counted: tuple[RedisBlobStore, Redis, str]) -> None:
    blobs, client, prefix = counted
    data = os.urandom(CHUNK_BYTES - 1)
    before = CountingConnection.sent
    assert await blobs.put_stream("out", _chunks(data, 4096)) == len(data)
    assert CountingConnection.sent - before == 1
    assert await _keys(client, prefix) == [f"{prefix}:blob:out"]
    assert 0 < await client.ttl(f"{prefix}:blob:out") <= 60
    assert await blobs.get("out") == data


async def test_a_long_stream_is_few_trips_and_leaves_no_partial_key(
        counted: tuple[RedisBlobStore, Redis, str]) -> None:
    blobs, client, prefix = counted
    data = os.urandom(3 * CHUNK_BYTES + 10)
    before = CountingConnection.sent
    assert await blobs.put_stream("out", _chunks(data, 1000)) == len(data)
    piece = -(-CHUNK_BYTES // 1000) * 1000  # the first 1000-byte chunks that reach a chunk's size
    pieces = -(-len(data) // piece)
    assert pieces == 3
    assert CountingConnection.sent - before == pieces + 1  # an append with its TTL each, then the rename
    assert await _keys(client, prefix) == [f"{prefix}:blob:out"]
    assert 0 < await client.ttl(f"{prefix}:blob:out") <= 60
    assert await blobs.get("out") == data


async def test_a_long_stream_that_fails_leaves_no_key(counted: tuple[RedisBlobStore, Redis, str]) -> None:
    blobs, client, prefix = counted

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(CHUNK_BYTES + 1)
        raise ConnectionResetError("the source went away")

    with pytest.raises(ConnectionResetError):
        await blobs.put_stream("out", broken())
    assert await _keys(client, prefix) == []
