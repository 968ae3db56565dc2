"""The BlobStore contract: the directory store and the Redis store pass the same tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from comfy_gateway.jobs.blobs import BlobStore

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


async def test_put_get_round_trip(blob_store: BlobStore) -> None:
    await blob_store.put("jobs/abc/input.png", PNG)
    await blob_store.put("empty", b"")
    assert await blob_store.get("jobs/abc/input.png") == PNG
    assert await blob_store.get("empty") == b""


async def test_put_overwrites(blob_store: BlobStore) -> None:
    await blob_store.put("k", b"old")
    await blob_store.put("k", b"new bytes")
    assert await blob_store.get("k") == b"new bytes"


async def test_missing_blob_raises_key_error(blob_store: BlobStore) -> None:
    with pytest.raises(KeyError):
        await blob_store.get("never-written")
    await blob_store.put("gone", b"x")
    await blob_store.delete("gone")
    with pytest.raises(KeyError):
        await blob_store.get("gone")


async def test_exists_and_delete(blob_store: BlobStore) -> None:
    assert not await blob_store.exists("a")
    for key in ("a", "b", "jobs/1/c.png"):
        await blob_store.put(key, key.encode())
    assert await blob_store.exists("a") and await blob_store.exists("jobs/1/c.png")
    await blob_store.delete("a", "jobs/1/c.png", "never-written")
    await blob_store.delete()
    assert not await blob_store.exists("a")
    assert not await blob_store.exists("jobs/1/c.png")
    assert await blob_store.get("b") == b"b"


async def test_keys_are_distinct(blob_store: BlobStore) -> None:
    await blob_store.put("jobs/1", b"one")
    await blob_store.put("jobs/1/x", b"nested")
    await blob_store.put("jobs-1", b"dash")
    assert [await blob_store.get(k) for k in ("jobs/1", "jobs/1/x", "jobs-1")] == [b"one", b"nested", b"dash"]


async def test_closed_store_refuses_calls(blob_store: BlobStore) -> None:
    await blob_store.put("k", b"v")
    await blob_store.close()
    await blob_store.close()
    with pytest.raises(RuntimeError):
        await blob_store.get("k")
    with pytest.raises(RuntimeError):
        await blob_store.put("k", b"v")


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def _read(blob_store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in await blob_store.read(key, start, end)])


BIG = os.urandom(6 * 1024 * 1024 + 12345)  # over one S3 part, not a multiple of any chunk size


async def test_streamed_blob_reads_back_whole_and_by_range(blob_store: BlobStore) -> None:
    assert await blob_store.put_stream("outputs/j-1/0", _chunks(BIG, 300_000)) == len(BIG)
    assert await _read(blob_store, "outputs/j-1/0") == BIG
    assert await blob_store.get("outputs/j-1/0") == BIG
    assert await _read(blob_store, "outputs/j-1/0", 5, 17) == BIG[5:17]
    assert await _read(blob_store, "outputs/j-1/0", len(BIG) - 3) == BIG[-3:]
    assert await _read(blob_store, "outputs/j-1/0", 10, len(BIG) + 99) == BIG[10:]
    chunks = [chunk async for chunk in await blob_store.read("outputs/j-1/0")]
    assert max(len(chunk) for chunk in chunks) <= 1024 * 1024  # chunks, not one piece


async def test_small_and_empty_streams(blob_store: BlobStore) -> None:
    assert await blob_store.put_stream("tiny", _chunks(b"hello", 2)) == 5
    assert await blob_store.put_stream("none", _chunks(b"", 1)) == 0
    assert await _read(blob_store, "tiny", 1, 4) == b"ell"
    assert await _read(blob_store, "none") == b""
    assert await blob_store.exists("none")


async def test_reading_a_missing_blob_raises_before_any_chunk(blob_store: BlobStore) -> None:
    with pytest.raises(KeyError):
        await blob_store.read("never-written")


class SourceFailed(Exception):
    """What a failing source raises (the ComfyUI client raises UpstreamUnavailable)."""


async def test_a_failed_stream_leaves_nothing(blob_store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise SourceFailed("upstream went away")

    with pytest.raises(SourceFailed):
        await blob_store.put_stream("half", broken())
    assert not await blob_store.exists("half")


async def test_a_key_rewritten_at_another_size_reads_its_latest_bytes(blob_store: BlobStore) -> None:
    large, small = os.urandom(5000), b"short"
    await blob_store.put("k", large)
    await blob_store.put("k", small)
    assert await blob_store.get("k") == small
    assert await _read(blob_store, "k", 1) == small[1:]
    assert await blob_store.put_stream("k", _chunks(large, 700)) == len(large)
    assert await blob_store.get("k") == large
    await blob_store.put("k", small)
    await blob_store.delete("k")
    assert not await blob_store.exists("k")
    with pytest.raises(KeyError):
        await blob_store.get("k")
