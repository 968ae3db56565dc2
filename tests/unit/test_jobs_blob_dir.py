"""DirectoryBlobStore specifics: key validation, the fan-out layout, atomic writes."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from comfy_gateway.errors import StorageError
from comfy_gateway.jobs.blob_dir import DirectoryBlobStore, _Folders, validate_key

BAD_KEYS = [
    "", "../etc/passwd", "a/../../b", "..", ".", "/abs/path", "a//b", "a/", "a/./b", ".hidden",
    "a\\b", "a b", "naïve", "a\x00b", "x" * 513,
]  # fmt: skip


@pytest.fixture
async def blobs(tmp_path: Path) -> AsyncIterator[DirectoryBlobStore]:
    store = DirectoryBlobStore(tmp_path / "root")
    await store.open()
    yield store
    await store.close()


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_unsafe_keys_are_rejected(blobs: DirectoryBlobStore, tmp_path: Path, key: str) -> None:
    for call in (blobs.get(key), blobs.exists(key), blobs.delete("ok", key), blobs.put(key, b"x")):
        with pytest.raises(ValueError):
            await call
    assert not (tmp_path / "etc").exists()
    assert [p for p in (tmp_path / "root").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("key", ["a", "jobs/123e4567-e89b/input.png", "A-Z_0.9", "x" * 512, "a/b/c/d"])
def test_safe_keys_are_accepted(key: str) -> None:
    assert validate_key(key) == key


async def test_blobs_fan_out_under_two_levels(blobs: DirectoryBlobStore, tmp_path: Path) -> None:
    await blobs.put("jobs/1/input.png", b"data")
    path = blobs.path("jobs/1/input.png")
    root = tmp_path / "root"
    rel = path.relative_to(root).parts
    assert len(rel[0]) == 2 and len(rel[1]) == 2 and rel[2:] == ("jobs", "1", "input.png")
    assert path.read_bytes() == b"data"
    assert blobs.path("jobs/1/input.png") != blobs.path("jobs/2/input.png")


async def test_failed_write_keeps_old_bytes_and_no_temp_file(
    blobs: DirectoryBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await blobs.put("k", b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StorageError) as caught:  # the driver's error, turned into the gateway's
        await blobs.put("k", b"new")
    assert str(caught.value.__cause__) == "disk full"
    monkeypatch.undo()
    assert await blobs.get("k") == b"old"
    assert sorted(p.name for p in blobs.path("k").parent.iterdir()) == ["k"]


async def test_context_manager_creates_root(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "root"
    async with DirectoryBlobStore(root, fsync=False) as store:
        assert root.is_dir()
        await store.put("k", b"v")
        assert await store.exists("k")
    with pytest.raises(RuntimeError):
        await store.exists("k")


async def test_a_folder_removed_behind_its_back_is_made_again(blobs: DirectoryBlobStore, tmp_path: Path) -> None:
    await blobs.put("jobs/1/input.png", b"first")
    shutil.rmtree(tmp_path / "root")  # an operator cleaning up, or a volume swapped
    await blobs.put("jobs/1/input.png", b"again")
    assert await blobs.get("jobs/1/input.png") == b"again"
    shutil.rmtree(tmp_path / "root")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3000):  # many small chunks: gathered, written in a few writes
            yield b"0123456789"

    assert await blobs.put_stream("jobs/1/input.png", chunks()) == 30000
    assert await blobs.get("jobs/1/input.png") == b"0123456789" * 3000


async def test_the_folders_it_remembers_stay_few_with_a_folder_per_job(
        blobs: DirectoryBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Folders, "KNOWN_FOLDERS", 8)
    for job in range(30):  # as job outputs are keyed: a folder of their own each
        await blobs.put(f"outputs/job{job}-1/0", b"png")
    assert len(blobs._folders._made) <= 8
    assert [await blobs.get(f"outputs/job{job}-1/0") for job in (0, 29)] == [b"png", b"png"]
