"""RedisBlobStore: blobs as Redis strings with a TTL, for replicas that share no disk.

The client is the caller's (it is not closed here). Keys must be non-empty (ValueError otherwise);
each blob expires `ttl_seconds` after its last write. A streamed blob is appended to a key of its
own and renamed into place at the end (one that fits in a chunk is one SET); ranges are read
with GETRANGE.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator

from redis.asyncio import Redis

from ..lifecycle import Lifecycle
from .blobs import CHUNK_BYTES, first_chunks
from .redis_keys import RedisKeys
from .resource import OpenClose
from .storage_faults import REDIS_DOWN, StorageFaults, converting


@converting(REDIS_DOWN, "the blob storage (Redis)")
class RedisBlobStore(OpenClose):
    expires = True  # each blob TTL seconds after its last write

    def __init__(self, client: Redis, prefix: str = "cg", ttl_seconds: int = 86400,
                 *, faults: StorageFaults | None = None) -> None:
        self.faults = faults
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        if not prefix:
            raise ValueError("prefix must not be empty")
        self._client = client
        self._keys = RedisKeys(prefix)
        self._ttl = int(ttl_seconds)
        self._state = Lifecycle.NEW

    async def open(self) -> None:
        if self._state is Lifecycle.CLOSED:
            raise RuntimeError("RedisBlobStore is closed and cannot be reopened")
        self._state = Lifecycle.OPEN

    async def close(self) -> None:
        self._state = Lifecycle.CLOSED

    def _key(self, key: str) -> str:
        if self._state is not Lifecycle.OPEN:
            raise RuntimeError(f"RedisBlobStore is {self._state.value}, not open")
        if not key:
            raise ValueError("blob key must not be empty")
        return self._keys.blob(key)

    async def put(self, key: str, data: bytes) -> None:
        await self._client.set(self._key(key), bytes(data), ex=self._ttl)

    async def get(self, key: str) -> bytes:
        data = await self._client.get(self._key(key))
        if data is None:
            raise KeyError(key)
        return data if isinstance(data, bytes) else data.encode()

    async def delete(self, *keys: str) -> None:
        names = [self._key(key) for key in keys]
        if names:
            await self._client.delete(*names)

    async def exists(self, key: str) -> bool:
        return bool(await self._client.exists(self._key(key)))

    async def put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """A stream that ends within one chunk's size is one SET; a longer one is appended to a key
        of its own, each piece with its TTL in the same round trip, and renamed into place."""
        name = self._key(key)
        stream = aiter(chunks)
        piece, size = await first_chunks(stream, CHUNK_BYTES)
        if size <= CHUNK_BYTES:
            await self._client.set(name, b"".join(piece), ex=self._ttl)
            return size
        partial = f"{name}:partial:{uuid.uuid4().hex}"
        try:
            while piece:
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.append(partial, b"".join(piece))
                    pipe.expire(partial, self._ttl)
                    size = (await pipe.execute())[0]
                piece, _ = await first_chunks(stream, CHUNK_BYTES)
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.rename(partial, name)
                pipe.expire(name, self._ttl)
                await pipe.execute()
        except BaseException:
            await self._client.delete(partial)
            raise
        return int(size)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        name = self._key(key)
        if not await self._client.exists(name):
            raise KeyError(key)
        size = int(await self._client.strlen(name))
        return self._chunks(name, start, size if end is None else min(end, size))

    async def _chunks(self, name: str, start: int, end: int) -> AsyncIterator[bytes]:
        while start < end:
            stop = min(start + CHUNK_BYTES, end)
            raw = await self._client.getrange(name, start, stop - 1)  # inclusive end
            chunk = raw if isinstance(raw, bytes) else raw.encode()
            if not chunk:
                return
            start += len(chunk)
            yield chunk

