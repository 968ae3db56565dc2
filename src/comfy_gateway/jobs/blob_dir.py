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
from pathlib import Path

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


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


@converting((OSError,), "the blob storage")
class DirectoryBlobStore(OpenClose):
    def __init__(self, root: Path, *, fsync: bool = True, faults: StorageFaults | None = None) -> None:
        self.faults = faults
        self._root = Path(root)
        self._fsync = fsync
        self._state = "new"

    async def open(self) -> None:
        if self._state == "closed":
            raise RuntimeError("DirectoryBlobStore is closed and cannot be reopened")
        await asyncio.to_thread(self._root.mkdir, parents=True, exist_ok=True)
        self._state = "open"

    async def close(self) -> None:
        self._state = "closed"

    def path(self, key: str) -> Path:
        """Where the blob for `key` lives (ValueError for an invalid key)."""
        if self._state != "open":
            raise RuntimeError(f"DirectoryBlobStore is {self._state}, not open")
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
