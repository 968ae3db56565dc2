"""The BlobStore contract: the directory store and the Redis store pass the same tests."""

from __future__ import annotations

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
