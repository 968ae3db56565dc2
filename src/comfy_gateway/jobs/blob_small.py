"""Small blobs as rows of one SQLite file; larger ones in the store it wraps (a directory).

A job's input, its result and its outputs are often a few kilobytes (a thumbnail, a mask, a text).
As files, each costs a new inode, and creating one was most of a small write's cost on the disks
of bench/ (0.04-0.9 ms of kernel CPU per file, against some 50 µs for a row). SQLite's own
measurements find blobs below about 100 KB faster inside a database than beside it. So a blob of
at most `max_bytes` is a row of `path` (WAL, synchronous=NORMAL, as the jobs database: it survives
a crash of the gateway, not a power cut of the machine); a larger one is a file of `inner`.

Where a key lives, for readers: its row if it has one, else its file. A small write after a large
one of the same key leaves the old file behind the row until the key is deleted; a large write
removes the key's row once its file is in place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path

from .blob_dir import validate_key
from .blobs import BlobStore, one_chunk
from .resource import OpenClose
from .storage_faults import StorageFaults, converting
from .worker_threads import WorkerThreads

SMALL_BLOB_BYTES = 64 * 1024
_SCHEMA = "CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL)"
_DELETE_BATCH = 500  # keys per DELETE: below SQLite's limit on bound parameters


class _Rows:
    """The SQLite side, called on its one thread (so its statements run in order)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _db(self) -> sqlite3.Connection:
        if self.conn is None:
            raise RuntimeError("the small-blob database is not open")
        return self.conn

    def put(self, key: str, data: bytes) -> None:
        self._db().execute("INSERT OR REPLACE INTO blobs (key, data) VALUES (?, ?)", (key, data))

    def get(self, key: str) -> bytes | None:
        row = self._db().execute("SELECT data FROM blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def delete(self, keys: Sequence[str]) -> None:
        db = self._db()
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start:start + _DELETE_BATCH]
            db.execute(f"DELETE FROM blobs WHERE key IN ({', '.join('?' * len(batch))})", batch)


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


@converting((OSError, sqlite3.Error), "the blob storage")
class SmallBlobStore(OpenClose):
    def __init__(self, inner: BlobStore, path: Path, *, max_bytes: int = SMALL_BLOB_BYTES,
                 faults: StorageFaults | None = None) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self.faults = faults
        self._rows = _Rows(path)
        self._thread = WorkerThreads("blob-rows", count=1)

    @property
    def expires(self) -> bool:
        return self.inner.expires

    async def open(self) -> None:
        await self.inner.open()
        self._thread.start()
        await self._thread.run(self._rows.connect)

    async def close(self) -> None:
        if self._thread.running:
            await self._thread.run(self._rows.close)
            await self._thread.stop()
        await self.inner.close()

    async def put(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            await self._put_large(key, one_chunk(bytes(data)))
            return
        await self._thread.run(self._rows.put, validate_key(key), bytes(data))

    async def get(self, key: str) -> bytes:
        data = await self._thread.run(self._rows.get, validate_key(key))
        return await self.inner.get(key) if data is None else data

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._thread.run(self._rows.delete, [validate_key(key) for key in keys])
            await self.inner.delete(*keys)

    async def exists(self, key: str) -> bool:
        data = await self._thread.run(self._rows.get, validate_key(key))
        return data is not None or await self.inner.exists(key)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Held in memory up to `max_bytes`: a stream that ends by then is a row, a longer one
        goes on to the inner store as it arrives."""
        validate_key(key)
        rest = aiter(chunks)
        head = bytearray()
        async for chunk in rest:
            head += chunk
            if len(head) > self.max_bytes:
                return await self._put_large(key, _chain(bytes(head), rest))
        await self._thread.run(self._rows.put, key, bytes(head))
        return len(head)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        data = await self._thread.run(self._rows.get, validate_key(key))
        if data is None:
            return await self.inner.read(key, start, end)
        stop = len(data) if end is None else min(end, len(data))
        return one_chunk(data[start:stop])

    async def _put_large(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        size = await self.inner.put_stream(key, chunks)
        await self._thread.run(self._rows.delete, [key])  # the file is in place: an older row goes
        return size
