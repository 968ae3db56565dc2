"""RedisBlobStore: blobs as Redis strings with a TTL, for replicas that share no disk.

The client is the caller's (it is not closed here). Keys must be non-empty (ValueError otherwise);
each blob expires `ttl_seconds` after its last write.
"""

from __future__ import annotations

from redis.asyncio import Redis

from .redis_keys import RedisKeys
from .resource import OpenClose
from .storage_faults import REDIS_DOWN, StorageFaults, converting


@converting(REDIS_DOWN, "the blob storage (Redis)")
class RedisBlobStore(OpenClose):
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
        self._state = "new"

    async def open(self) -> None:
        if self._state == "closed":
            raise RuntimeError("RedisBlobStore is closed and cannot be reopened")
        self._state = "open"

    async def close(self) -> None:
        self._state = "closed"

    def _key(self, key: str) -> str:
        if self._state != "open":
            raise RuntimeError(f"RedisBlobStore is {self._state}, not open")
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
