"""The in-memory cache in front of a blob store."""

from __future__ import annotations

import pytest

from comfy_gateway.jobs.blob_cache import CachedBlobStore
from comfy_gateway.jobs.blob_dir import DirectoryBlobStore


@pytest.fixture
async def stores(tmp_path):
    inner = DirectoryBlobStore(tmp_path, fsync=False)
    async with CachedBlobStore(inner, max_bytes=10) as cached:
        yield cached, inner


async def test_reads_come_from_memory_and_writes_reach_the_store(stores):
    cached, inner = stores
    await cached.put("a", b"12345")
    assert await inner.get("a") == b"12345"  # written through
    await inner.delete("a")  # behind the cache's back: the cached copy still answers
    assert await cached.get("a") == b"12345"


async def test_oldest_entries_go_past_the_size_limit(stores):
    cached, inner = stores
    await cached.put("a", b"12345")
    await cached.put("b", b"12345")
    await cached.get("a")  # a is now the most recently used
    await cached.put("c", b"123")
    assert cached.cached_bytes == 8
    await inner.delete("b")
    with pytest.raises(KeyError):
        await cached.get("b")  # evicted, and gone from the store
    assert await cached.get("a") == b"12345"


async def test_delete_removes_both_copies_and_big_blobs_bypass_memory(stores):
    cached, inner = stores
    await cached.put("a", b"12345")
    await cached.delete("a")
    assert not await cached.exists("a") and not await inner.exists("a")
    await cached.put("big", b"x" * 11)
    assert cached.cached_bytes == 0 and await cached.get("big") == b"x" * 11


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


async def test_streamed_blobs_are_never_cached(stores):
    cached, inner = stores
    await cached.put("s", b"old")
    assert await cached.put_stream("s", _chunks(b"12", b"34")) == 4
    assert cached.cached_bytes == 0  # the stale copy went too
    assert b"".join([c async for c in await cached.read("s", 1, 3)]) == b"23"
    await cached.put("small", b"12345")
    await inner.delete("small")  # served from memory, by range as well
    assert b"".join([c async for c in await cached.read("small", 3)]) == b"45"
