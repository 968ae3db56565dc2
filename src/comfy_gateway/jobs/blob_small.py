"""Small blobs as rows of one SQLite file; larger ones in the store it wraps (a directory).

A job's input, its result and its outputs are often a few kilobytes (a thumbnail, a mask, a text).
As files, each costs a new inode, and creating one was most of a small write's cost on the disks
of bench/ (0.04-0.9 ms of kernel CPU per file, against some 50 µs for a row). SQLite's own
measurements find blobs below about 100 KB faster inside a database than beside it. So a blob of
at most `max_bytes` is a row of `path` (WAL, synchronous=NORMAL, as the jobs database: it survives
a crash of the gateway, not a power cut of the machine); a larger one is a file of `inner`.

The rows are written and read in place, on the event loop: a point statement on this file takes
tens of microseconds, less than handing it to a thread and back. What can take longer runs on the
store's thread, with a connection of its own: the checkpoints that move the WAL into the database
(SQLite's automatic ones are off on the loop's connection), deletes of many keys (the janitor's),
and any statement that finds the file locked, which waits there instead of on the loop.

Where a key lives, for readers: its row if it has one, else its file. A small write after a large
one of the same key leaves the old file behind the row until the key is deleted; a large write
removes the key's row once its file is in place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .blob_dir import validate_key
from .blobs import BlobStore, first_chunks, one_chunk
from .resource import OpenClose
from .sqlite_calls import Checkpoints, locked
from .storage_faults import StorageFaults, converting
from .worker_threads import WorkerThreads

SMALL_BLOB_BYTES = 64 * 1024
CHECKPOINT_AFTER_BYTES = 4 * 1024 * 1024  # written in place since the last checkpoint: about 1,000 pages
_SCHEMA = "CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL)"
_DELETE_BATCH = 500  # keys per DELETE: below SQLite's limit on bound parameters
_T = TypeVar("_T")


def _connect(path: Path, *, in_place: bool) -> sqlite3.Connection:
    """The loop's connection (`in_place`: never waits for a lock, never checkpoints) or the thread's."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=in_place)
    try:
        conn.execute(f"PRAGMA busy_timeout = {0 if in_place else 5000}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if in_place:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _put(conn: sqlite3.Connection, key: str, data: bytes) -> None:
    conn.execute("INSERT OR REPLACE INTO blobs (key, data) VALUES (?, ?)", (key, data))


def _get(conn: sqlite3.Connection, key: str) -> bytes | None:
    row = conn.execute("SELECT data FROM blobs WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


def _delete(conn: sqlite3.Connection, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), _DELETE_BATCH):
        batch = keys[start:start + _DELETE_BATCH]
        conn.execute(f"DELETE FROM blobs WHERE key IN ({', '.join('?' * len(batch))})", batch)


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk


@converting((OSError, sqlite3.Error), "the blob storage")
class SmallBlobStore(OpenClose):
    def __init__(self, inner: BlobStore, path: Path, *, max_bytes: int = SMALL_BLOB_BYTES,
                 faults: StorageFaults | None = None) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self.faults = faults
        self._path = path
        self._here: sqlite3.Connection | None = None  # the loop's
        self._there: sqlite3.Connection | None = None  # the thread's
        self._thread = WorkerThreads("blob-rows", count=1)
        self._checkpoints = Checkpoints(lambda: self._on_thread(_checkpoint), "the small-blob database")

    @property
    def expires(self) -> bool:
        return self.inner.expires

    async def open(self) -> None:
        await self.inner.open()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        self._there = await self._thread.run(lambda: _connect(self._path, in_place=False))
        self._here = _connect(self._path, in_place=True)

    async def close(self) -> None:
        here, self._here = self._here, None
        if here is not None:
            here.close()
        await self._checkpoints.finish()
        if self._thread.running:
            there, self._there = self._there, None
            if there is not None:
                await self._thread.run(there.close)  # the last connection: it checkpoints, on the thread
            await self._thread.stop()
        await self.inner.close()

    async def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            await self.inner.put(key, data)
            await self._drop_row(key)
            return
        await self._in_place(_put, validate_key(key), bytes(data))
        self._checkpoints.add(len(data), CHECKPOINT_AFTER_BYTES)

    async def get(self, key: str) -> bytes:
        data = await self._in_place(_get, validate_key(key))
        return await self.inner.get(key) if data is None else data

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._on_thread(_delete, [validate_key(key) for key in keys])
            await self.inner.delete(*keys)

    async def exists(self, key: str) -> bool:
        data = await self._in_place(_get, validate_key(key))
        return data is not None or await self.inner.exists(key)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Held in memory up to `max_bytes`: a stream that ends by then is a row, a longer one
        goes on to the inner store as it arrives (its first chunks as they came, not copied)."""
        validate_key(key)
        rest = aiter(chunks)
        head, size = await first_chunks(rest, self.max_bytes)
        if size > self.max_bytes:
            size = await self.inner.put_stream(key, _chain(head, rest))
            await self._drop_row(key)
            return size
        await self.put(key, b"".join(head))
        return size

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        data = await self._in_place(_get, validate_key(key))
        if data is None:
            return await self.inner.read(key, start, end)
        stop = len(data) if end is None else min(end, len(data))
        return one_chunk(data[start:stop])

    async def _drop_row(self, key: str) -> None:
        """After a large write: the key's file is in place, an older row of it goes (one key: in place)."""
        await self._in_place(_delete, [key])

    async def _in_place(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._here is None:
            raise RuntimeError("the small-blob store is not open")
        try:
            return fn(self._here, *args)
        except sqlite3.OperationalError as exc:
            if not locked(exc):
                raise
        return await self._on_thread(fn, *args)  # the file is locked: wait for it off the loop

    async def _on_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._there is None:
            raise RuntimeError("the small-blob store is not open")
        return await self._thread.run(fn, self._there, *args)
