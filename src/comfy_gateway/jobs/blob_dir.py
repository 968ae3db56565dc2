"""DirectoryBlobStore: blobs as files under one root directory.

A key is one or more `/`-separated segments of `[A-Za-z0-9._-]` that do not start with a dot (so
no `..`, no hidden files, no absolute paths); anything else raises ValueError. A blob lives at
`root/ab/cd/<key>`, where `abcd` starts the SHA-256 of the key, so no directory grows too large.
A write goes to a temporary file beside the target, is flushed to disk (unless `fsync=False`),
then renamed over it: a reader sees the old bytes or the new ones, never half a file.
Empty directories left by `delete` are kept. File I/O runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from ..lifecycle import Lifecycle
from .blobs import CHUNK_BYTES
from .resource import OpenClose
from .storage_faults import StorageFaults, converting

_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
MAX_KEY_LENGTH = 512


def validate_key(key: str) -> str:
    """Return `key` if it is a safe blob key, else raise ValueError."""
    if not key or len(key) > MAX_KEY_LENGTH or not all(_SEGMENT.fullmatch(s) for s in key.split("/")):
        raise ValueError(f"invalid blob key: {key!r}")
    return key


def _write(path: Path, data: bytes, fsync: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class _PartFile:
    """A blob being written: a temporary file beside its place, created with the first bytes and
    renamed into place by `seal` (one thread hop per chunk, one to finish)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp: Path | None = None
        self.file: BinaryIO | None = None

    def write(self, chunk: bytes) -> None:
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            self.file, self.tmp = os.fdopen(fd, "wb"), Path(tmp)
        self.file.write(chunk)

    def seal(self, fsync: bool) -> None:
        self.write(b"")  # an empty blob is a file too
        assert self.file is not None and self.tmp is not None
        with self.file:
            if fsync:
                self.file.flush()
                os.fsync(self.file.fileno())
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.file is not None and self.tmp is not None:
            self.file.close()
            self.tmp.unlink(missing_ok=True)


def _open_at(path: Path, start: int) -> BinaryIO:
    file = path.open("rb")
    file.seek(start)
    return file


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


@converting((OSError,), "the blob storage")
class DirectoryBlobStore(OpenClose):
    def __init__(self, root: Path, *, fsync: bool = True, faults: StorageFaults | None = None) -> None:
        self.faults = faults
        self._root = Path(root)
        self._fsync = fsync
        self._state = Lifecycle.NEW

    async def open(self) -> None:
        if self._state is Lifecycle.CLOSED:
            raise RuntimeError("DirectoryBlobStore is closed and cannot be reopened")
        await asyncio.to_thread(self._root.mkdir, parents=True, exist_ok=True)
        self._state = Lifecycle.OPEN

    async def close(self) -> None:
        self._state = Lifecycle.CLOSED

    def path(self, key: str) -> Path:
        """Where the blob for `key` lives (ValueError for an invalid key)."""
        if self._state is not Lifecycle.OPEN:
            raise RuntimeError(f"DirectoryBlobStore is {self._state.value}, not open")
        digest = hashlib.sha256(validate_key(key).encode()).hexdigest()
        return self._root / digest[:2] / digest[2:4] / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(_write, self.path(key), bytes(data), self._fsync)

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    async def delete(self, *keys: str) -> None:
        paths = [self.path(key) for key in keys]
        if paths:
            await asyncio.to_thread(_unlink, paths)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).is_file)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        part = _PartFile(self.path(key))
        size = 0
        try:
            async for chunk in chunks:
                await asyncio.to_thread(part.write, chunk)
                size += len(chunk)
            await asyncio.to_thread(part.seal, self._fsync)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(part.discard))
            raise
        return size

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError as exc:
            raise KeyError(key) from exc
        return self._chunks(path, start, size if end is None else min(end, size))

    @staticmethod
    async def _chunks(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
        file = await asyncio.to_thread(_open_at, path, start)
        try:
            left = end - start
            while left > 0:
                chunk = await asyncio.to_thread(file.read, min(CHUNK_BYTES, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        finally:
            file.close()
