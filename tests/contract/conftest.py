"""Store factories for the contract suites: every JobStore and BlobStore runs the same tests.

Redis tests use REDIS_URL (default redis://127.0.0.1:6379/0), a fresh key prefix per test, and
delete their keys afterwards. An unreachable Redis fails them, unless SKIP_REDIS_TESTS=1.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from comfy_gateway.jobs.blob_cache import CachedBlobStore
from comfy_gateway.jobs.blob_dir import DirectoryBlobStore
from comfy_gateway.jobs.blob_redis import RedisBlobStore
from comfy_gateway.jobs.blob_s3 import S3BlobStore
from comfy_gateway.jobs.blob_small import SmallBlobStore
from comfy_gateway.jobs.blobs import BlobStore
from comfy_gateway.jobs.redis_store import RedisJobStore
from comfy_gateway.jobs.sqlite import SqliteJobStore
from comfy_gateway.jobs.store import JobStore
from support.redis import REDIS_URL, connect_redis, drop_prefix
from support.s3 import create_bucket

JobStoreFactory = Callable[[], JobStore]

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]
SMALL_ROWS_LIMIT = 1000
BLOB_BACKENDS = ["directory", "small-rows", "cached", "s3", pytest.param("redis", marks=pytest.mark.redis)]


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
    if request.param == "small-rows":  # a low limit: the suite's blobs land on both sides of it
        async with SmallBlobStore(DirectoryBlobStore(tmp_path / "blobs"), tmp_path / "small.db",
                                  max_bytes=SMALL_ROWS_LIMIT) as small:
            yield small
        return
    if request.param == "cached":
        async with CachedBlobStore(DirectoryBlobStore(tmp_path / "blobs"), max_bytes=1 << 20) as cached:
            yield cached
        return
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = await create_bucket(endpoint)
        async with S3BlobStore(bucket, "contract", endpoint_url=endpoint, part_bytes=5 << 20) as s3:
            yield s3
        return
    client = await connect_redis()
    prefix = f"cgtest:{uuid.uuid4().hex}"
    try:
        async with RedisBlobStore(client, prefix, ttl_seconds=60) as blobs:
            yield blobs
    finally:
        await drop_prefix(client, prefix)
        await client.aclose()
