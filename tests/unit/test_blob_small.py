"""SmallBlobStore specifics: which blobs become rows and which stay files."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from comfy_gateway.jobs import blob_small
from comfy_gateway.jobs.blob_dir import DirectoryBlobStore
from comfy_gateway.jobs.blob_small import SmallBlobStore
from support.sqlite_files import checkpointed, done_after_the_lock_is_released


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def _rows(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(key for (key,) in conn.execute("SELECT key FROM blobs"))


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[SmallBlobStore]:
    async with SmallBlobStore(DirectoryBlobStore(tmp_path / "files"), tmp_path / "small.db", max_bytes=100) as store:
        yield store


async def test_blobs_up_to_the_limit_are_rows_and_larger_ones_files(small: SmallBlobStore, tmp_path: Path) -> None:
    await small.put("inputs/a", b"x" * 100)
    await small.put("inputs/b", b"y" * 101)
    assert await small.put_stream("outputs/c", _chunks(b"z" * 100, 30)) == 100
    assert await small.put_stream("outputs/d", _chunks(b"w" * 250, 30)) == 250
    assert _rows(tmp_path / "small.db") == ["inputs/a", "outputs/c"]
    assert _files(tmp_path / "files") == ["b", "d"]
    assert [await small.get(k) for k in ("inputs/a", "inputs/b", "outputs/c", "outputs/d")] == [
        b"x" * 100, b"y" * 101, b"z" * 100, b"w" * 250]


async def test_a_large_write_takes_the_place_of_a_row(small: SmallBlobStore, tmp_path: Path) -> None:
    await small.put("k", b"small")
    await small.put("k", b"L" * 500)
    assert _rows(tmp_path / "small.db") == []
    assert await small.get("k") == b"L" * 500


async def test_rows_survive_a_reopen(tmp_path: Path) -> None:
    async with SmallBlobStore(DirectoryBlobStore(tmp_path / "files"), tmp_path / "small.db") as store:
        await store.put("inputs/job", b"bytes of a job")
    async with SmallBlobStore(DirectoryBlobStore(tmp_path / "files"), tmp_path / "small.db") as store:
        assert await store.get("inputs/job") == b"bytes of a job"


async def test_an_unsafe_key_is_refused_before_it_is_stored(small: SmallBlobStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        await small.put("../escape", b"x")
    assert _rows(tmp_path / "small.db") == []


async def test_a_locked_file_is_waited_for_off_the_loop(small: SmallBlobStore, tmp_path: Path) -> None:
    await done_after_the_lock_is_released(tmp_path / "small.db", small.put("inputs/late", b"waited"))
    assert await small.get("inputs/late") == b"waited"


async def test_writes_in_place_are_checkpointed_on_the_thread(
    small: SmallBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_small, "CHECKPOINT_AFTER_BYTES", 2000)
    await checkpointed(tmp_path / "small.db", lambda n: small.put(f"inputs/{n}", bytes([n]) * 100), 30)
    assert [await small.get(f"inputs/{n}") for n in (0, 29)] == [b"\x00" * 100, b"\x1d" * 100]
