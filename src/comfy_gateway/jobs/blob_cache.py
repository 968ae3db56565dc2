"""A bounded in-memory cache in front of a BlobStore.

A job's input is read back by the dispatcher a few milliseconds after it was written, and its
result by the sync request waiting for it: both usually come from here instead of the disk or
Redis. Blobs never change once written (keys are per job and per attempt), so the cache needs no
invalidation beyond deletes. Oldest entries go first once `max_bytes` is reached. Streamed blobs
(output files of any size) pass through uncached: only `put` fills the cache.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator

from .blobs import CHUNK_BYTES, BlobStore
from .resource import OpenClose


class CachedBlobStore(OpenClose):
    def __init__(self, inner: BlobStore, max_bytes: int) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    @property
    def expires(self) -> bool:
        return self.inner.expires

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        self._entries.clear()
        self._size = 0
        await self.inner.close()

    def remember(self, key: str, data: bytes) -> None:
        """Keep bytes already stored under `key` (by `put`, or by a stream the caller also gathered)."""
        if len(data) > self.max_bytes:
            return
        self._forget(key)
        self._entries[key] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self._size -= len(old)

    def _forget(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old)

    async def put(self, key: str, data: bytes) -> None:
        await self.inner.put(key, data)
        self.remember(key, data)

    async def get(self, key: str) -> bytes:
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
            return data
        return await self.inner.get(key)  # not cached again: a cold read is usually a one-off

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._forget(key)
        await self.inner.delete(*keys)

    async def exists(self, key: str) -> bool:
        return key in self._entries or await self.inner.exists(key)

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        self._forget(key)
        return await self.inner.put_stream(key, chunks)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        data = self._entries.get(key)
        if data is None:
            return await self.inner.read(key, start, end)
        return _slices(data, start, len(data) if end is None else min(end, len(data)))

    @property
    def cached_bytes(self) -> int:
        return self._size


async def _slices(data: bytes, start: int, end: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for offset in range(start, end, CHUNK_BYTES):
        yield bytes(view[offset:min(offset + CHUNK_BYTES, end)])
