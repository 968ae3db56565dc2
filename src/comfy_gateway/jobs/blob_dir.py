"""DirectoryBlobStore: blobs as files under one root directory.

A key is one or more `/`-separated segments of `[A-Za-z0-9._-]` that do not start with a dot (so
no `..`, no hidden files, no absolute paths); anything else raises ValueError. A blob lives at
`root/ab/cd/<key>`, where `abcd` starts the SHA-256 of the key, so no directory grows too large.
A write goes to a temporary file beside the target, is flushed to disk (unless `fsync=False`),
then renamed over it: a reader sees the old bytes or the new ones, never half a file.
Empty directories left by `delete` are kept. File I/O runs on the store's own worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ..lifecycle import Lifecycle
from .blobs import CHUNK_BYTES, one_chunk
from .resource import OpenClose
from .storage_faults import StorageFaults, converting
from .worker_threads import WorkerThreads

IO_THREADS = 4  # blob writes and reads of several jobs side by side
STREAM_WRITE_BYTES = 1024 * 1024  # what a streamed blob gathers before a write (a small output: one)
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
MAX_KEY_LENGTH = 512
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 16  # buffers one writev takes
_T = TypeVar("_T")


def validate_key(key: str) -> str:
    """Return `key` if it is a safe blob key, else raise ValueError."""
    if not key or len(key) > MAX_KEY_LENGTH or not all(_SEGMENT.fullmatch(s) for s in key.split("/")):
        raise ValueError(f"invalid blob key: {key!r}")
    return key


class _Folders:
    """The blob folders known to exist: a write does not ask the disk again. One removed behind our
    back is made again when a file cannot be created in it. A key's own segments make folders too
    (`outputs/<job>-<attempt>/0`: one per job), so the memory is forgotten past KNOWN_FOLDERS."""

    KNOWN_FOLDERS = 4096

    def __init__(self) -> None:
        self._made: set[Path] = set()

    def temp_file_beside(self, path: Path) -> tuple[int, str]:
        folder = path.parent
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            if len(self._made) >= self.KNOWN_FOLDERS:
                self._made.clear()
            self._made.add(folder)
        try:
            return tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")


def _write(path: Path, data: bytes, fsync: bool, folders: _Folders) -> None:
    fd, tmp = folders.temp_file_beside(path)
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
    renamed into place by `seal` (one thread hop per STREAM_WRITE_BYTES, one to finish). Chunks
    are written as they came, several per system call, never copied together first."""

    def __init__(self, path: Path, folders: _Folders) -> None:
        self.path = path
        self.folders = folders
        self.tmp: Path | None = None
        self.fd: int | None = None

    def write(self, chunks: list[bytes]) -> None:
        if self.fd is None:
            fd, tmp = self.folders.temp_file_beside(self.path)
            self.fd, self.tmp = fd, Path(tmp)
        _write_all(self.fd, chunks)

    def seal(self, fsync: bool, last: list[bytes]) -> None:
        self.write(last)  # an empty blob is a file too
        assert self.fd is not None and self.tmp is not None
        try:
            if fsync:
                os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = None
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    for start in range(0, len(chunks), _IOV_MAX):
        batch = chunks[start:start + _IOV_MAX]
        written, total = os.writev(fd, batch), sum(map(len, batch))
        if written < total:  # a short write (a signal, a full disk): the rest, piece by piece
            rest = memoryview(b"".join(batch))[written:]
            while rest:
                rest = rest[os.write(fd, rest):]


def _small_or_end(path: Path, start: int, end: int | None) -> tuple[int, bytes | None]:
    """Where the range ends, and its bytes when it fits in one chunk: a small blob is read in one
    thread hop, a larger one is streamed."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        stop = size if end is None else min(end, size)
        if stop - start > CHUNK_BYTES:
            return stop, None
        file.seek(start)
        return stop, file.read(max(0, stop - start))


def _open_at(path: Path, start: int) -> BinaryIO:
    file = path.open("rb")
    file.seek(start)
    return file


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


@converting((OSError,), "the blob storage")
class DirectoryBlobStore(OpenClose):
    expires = False

    def __init__(self, root: Path, *, fsync: bool = True, faults: StorageFaults | None = None) -> None:
        self.faults = faults
        self._root = Path(root)
        self._fsync = fsync
        self._state = Lifecycle.NEW
        self._folders = _Folders()
        self._threads = WorkerThreads("blob-files", count=IO_THREADS)

    async def open(self) -> None:
        if self._state is Lifecycle.CLOSED:
            raise RuntimeError("DirectoryBlobStore is closed and cannot be reopened")
        self._threads.start()
        await self._io(functools.partial(self._root.mkdir, parents=True, exist_ok=True))
        self._state = Lifecycle.OPEN

    async def close(self) -> None:
        self._state = Lifecycle.CLOSED
        await self._threads.stop()

    async def _io(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._threads.running:
            return await self._threads.run(fn, *args)
        # Closed: a read already under way (a download being streamed) ends on the loop's default executor.
        return await asyncio.to_thread(fn, *args)

    def path(self, key: str) -> Path:
        """Where the blob for `key` lives (ValueError for an invalid key)."""
        if self._state is not Lifecycle.OPEN:
            raise RuntimeError(f"DirectoryBlobStore is {self._state.value}, not open")
        digest = hashlib.sha256(validate_key(key).encode()).hexdigest()
        return self._root / digest[:2] / digest[2:4] / key

    async def put(self, key: str, data: bytes) -> None:
        await self._io(_write, self.path(key), bytes(data), self._fsync, self._folders)

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await self._io(path.read_bytes)
        except FileNotFoundError as exc:
            raise KeyError(key) from exc

    async def delete(self, *keys: str) -> None:
        paths = [self.path(key) for key in keys]
        if paths:
            await self._io(_unlink, paths)

    async def exists(self, key: str) -> bool:
        return await self._io(self.path(key).is_file)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        part = _PartFile(self.path(key), self._folders)
        size = 0
        pending: list[bytes] = []  # chunks are written together: one thread hop per STREAM_WRITE_BYTES
        held = 0
        try:
            async for chunk in chunks:
                pending.append(chunk if isinstance(chunk, bytes) else bytes(chunk))  # a buffer may be reused
                size += len(chunk)
                held += len(chunk)
                if held >= STREAM_WRITE_BYTES:
                    await self._io(part.write, pending)
                    pending, held = [], 0
            await self._io(part.seal, self._fsync, pending)
        except BaseException:
            await asyncio.shield(self._io(part.discard))
            raise
        return size

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self.path(key)
        try:
            stop, small = await self._io(_small_or_end, path, start, end)
        except FileNotFoundError as exc:
            raise KeyError(key) from exc
        return self._chunks(path, start, stop) if small is None else one_chunk(small)

    async def _chunks(self, path: Path, start: int, end: int) -> AsyncIterator[bytes]:
        file = await self._io(_open_at, path, start)
        try:
            left = end - start
            while left > 0:
                chunk = await self._io(file.read, min(CHUNK_BYTES, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        finally:
            file.close()
