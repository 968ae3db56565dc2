"""requests_per_minute as a token bucket per key: a full minute's worth may come at once, then the
bucket refills at the steady rate. In-process for one gateway; in Redis (one script, Redis's own
clock) when replicas share the limit."""

from __future__ import annotations

import time
from typing import Protocol

from redis.asyncio import Redis

from ..jobs.storage_faults import REDIS_DOWN, converting


class RateLimiter(Protocol):
    async def take(self, name: str, per_minute: int) -> float:
        """Take one token of `name`'s bucket: 0.0 if there was one, else the seconds until there is."""


class LocalRateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when counted)

    async def take(self, name: str, per_minute: int) -> float:
        now = time.monotonic()
        rate = per_minute / 60.0
        tokens, at = self._buckets.get(name, (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - at) * rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / rate
        self._buckets[name] = (tokens, now)
        return wait


# KEYS[1]: the bucket; ARGV[1]: per minute. Returns the wait as text (Lua numbers become integers).
_TAKE = """
local cap = tonumber(ARGV[1])
local rate = cap / 60
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = math.min(cap, (tonumber(b[1]) or cap) + math.max(0, now - (tonumber(b[2]) or now)) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate * 1000) + 1000)
return tostring(wait)
"""


@converting(REDIS_DOWN, "the rate limiter (Redis)")  # Redis down: 503 with Retry-After, not a 500
class RedisRateLimiter:
    """One bucket per key name under `{prefix}:rate:{name}`, shared by every replica."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._prefix = prefix
        self._take = client.register_script(_TAKE)

    async def take(self, name: str, per_minute: int) -> float:
        wait = await self._take(keys=[f"{self._prefix}:rate:{name}"], args=[per_minute])
        return float(wait.decode() if isinstance(wait, bytes) else wait)
