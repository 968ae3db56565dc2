"""Store factories for the contract suites: every JobStore and BlobStore runs the same tests.

Redis tests use REDIS_URL (default redis://127.0.0.1:6379/0), a fresh key prefix per test, and
delete their keys afterwards. An unreachable Redis fails them, unless SKIP_REDIS_TESTS=1.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from comfy_gateway.jobs.blob_dir import DirectoryBlobStore
from comfy_gateway.jobs.blob_redis import RedisBlobStore
from comfy_gateway.jobs.blobs import BlobStore
from comfy_gateway.jobs.redis_store import RedisJobStore
from comfy_gateway.jobs.sqlite import SqliteJobStore
from comfy_gateway.jobs.store import JobStore

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

JobStoreFactory = Callable[[], JobStore]

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]
BLOB_BACKENDS = ["directory", pytest.param("redis", marks=pytest.mark.redis)]


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


@pytest.fixture(params=BACKENDS)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStoreFactory]:
    """Makes unopened stores over ONE backing store (same file, or same Redis prefix)."""
    made: list[JobStore] = []
    if request.param == "sqlite":
        path = tmp_path / "jobs.sqlite3"

        def factory() -> JobStore:
            made.append(SqliteJobStore(path))
            return made[-1]

        yield factory
        for store in made:
            await store.close()
        return

    admin = await connect_redis()
    prefix = f"cgtest:{uuid.uuid4().hex}"

    def redis_factory() -> JobStore:
        made.append(RedisJobStore(REDIS_URL, prefix=prefix))
        return made[-1]

    try:
        yield redis_factory
    finally:
        for store in made:
            await store.close()
        await drop_prefix(admin, prefix)
        await admin.aclose()


@pytest.fixture
async def store(make_store: JobStoreFactory) -> AsyncIterator[JobStore]:
    opened = make_store()
    await opened.open()
    yield opened  # make_store closes it


@pytest.fixture(params=BLOB_BACKENDS)
async def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "directory":
        async with DirectoryBlobStore(tmp_path / "blobs") as blobs:
            yield blobs
        return
    client = await connect_redis()
    prefix = f"cgtest:{uuid.uuid4().hex}"
    try:
        async with RedisBlobStore(client, prefix, ttl_seconds=60) as blobs:
            yield blobs
    finally:
        await drop_prefix(client, prefix)
        await client.aclose()
