"""MAX_CONCURRENT_JOBS and MAX_JOBS_PER_INSTANCE across replicas, enforced by one Lua script.

Each replica counts the slots it holds in its own hash; a replica is alive while its heartbeat
(a score in one sorted set) is in the future. `acquire` sums the live replicas' hashes, picks the
least-loaded candidate with room and takes the slot, all in one atomic step. A replica that dies
stops heartbeating, and its slots are freed when its heartbeat runs out; the heartbeat lasts
twice a job lease, so the replica that adopts a dead one's jobs (after one lease) moves their
slots over first, and the servers' real load stays counted throughout.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

from redis.asyncio import Redis

from ..jobs.storage_faults import REDIS_DOWN, converting

_USAGE = """
local P, now = ARGV[1], tonumber(ARGV[2])
local replicas = P .. ':slots:replicas'
for _, r in ipairs(redis.call('ZRANGEBYSCORE', replicas, '-inf', now)) do
    redis.call('DEL', P .. ':slots:' .. r)
    redis.call('ZREM', replicas, r)
end
local used, total = {}, 0
for _, r in ipairs(redis.call('ZRANGE', replicas, 0, -1)) do
    local h = redis.call('HGETALL', P .. ':slots:' .. r)
    for i = 1, #h, 2 do
        local n = tonumber(h[i + 1])
        used[h[i]] = (used[h[i]] or 0) + n
        total = total + n
    end
end
"""

# ARGV: prefix, now, replica, heartbeat ttl, per instance, total, candidates...
ACQUIRE = _USAGE + """
redis.call('ZADD', replicas, now + tonumber(ARGV[4]), ARGV[3])
if total >= tonumber(ARGV[6]) then return false end
local best, best_n = nil, nil
for i = 7, #ARGV do
    local n = used[ARGV[i]] or 0
    if n < tonumber(ARGV[5]) and (best_n == nil or n < best_n) then best, best_n = ARGV[i], n end
end
if best == nil then return false end
redis.call('HINCRBY', P .. ':slots:' .. ARGV[3], best, 1)
return best
"""

# ARGV: prefix, replica, instance
RELEASE = """
local key = ARGV[1] .. ':slots:' .. ARGV[2]
if redis.call('HINCRBY', key, ARGV[3], -1) <= 0 then redis.call('HDEL', key, ARGV[3]) end
return 1
"""

# ARGV: prefix, previous owner, new owner, instance: move one slot (or add it when none is left)
ADOPT = """
local old = ARGV[1] .. ':slots:' .. ARGV[2]
if ARGV[2] ~= '' and tonumber(redis.call('HGET', old, ARGV[4]) or '0') > 0 then
    if redis.call('HINCRBY', old, ARGV[4], -1) <= 0 then redis.call('HDEL', old, ARGV[4]) end
end
redis.call('HINCRBY', ARGV[1] .. ':slots:' .. ARGV[3], ARGV[4], 1)
return 1
"""

# ARGV: prefix, now
USAGE = _USAGE + """
local out = {}
for name, n in pairs(used) do if n > 0 then table.insert(out, name); table.insert(out, n) end end
return out
"""


@converting(REDIS_DOWN, "the slot ledger (Redis)")
class RedisSlots:
    def __init__(self, client: Redis, prefix: str, replica: str, *, per_instance: int, total: int,
                 heartbeat_s: float) -> None:
        self.per_instance = per_instance
        self.total = total
        self._prefix = prefix
        self._replica = replica
        self._heartbeat_s = heartbeat_s
        self._client = client
        self._acquire = client.register_script(ACQUIRE)
        self._release = client.register_script(RELEASE)
        self._usage = client.register_script(USAGE)
        self._adopt = client.register_script(ADOPT)
        self._turn = itertools.count()

    async def acquire(self, candidates: Sequence[str]) -> str | None:
        if not candidates:
            return None
        # Rotate the candidates so that ties between idle servers are spread, not always the first.
        shift = next(self._turn) % len(candidates)
        ordered = [*candidates[shift:], *candidates[:shift]]
        chosen = await self._acquire(args=[self._prefix, time.time(), self._replica, self._heartbeat_s,
                                           self.per_instance, self.total, *ordered])
        return chosen.decode() if isinstance(chosen, bytes) else chosen

    async def release(self, instance: str) -> None:
        await self._release(args=[self._prefix, self._replica, instance])

    async def adopt(self, previous_owner: str | None, instance: str) -> None:
        await self._adopt(args=[self._prefix, previous_owner or "", self._replica, instance])

    async def usage(self) -> dict[str, int]:
        flat = await self._usage(args=[self._prefix, time.time()])
        names = [n.decode() if isinstance(n, bytes) else n for n in flat[::2]]
        return {name: int(n) for name, n in zip(names, flat[1::2], strict=True)}

    async def heartbeat(self) -> None:
        """Keep this replica's slots counted; called well within `heartbeat_s`."""
        expires = time.time() + self._heartbeat_s
        await self._client.zadd(f"{self._prefix}:slots:replicas", {self._replica: expires})

    async def run_heartbeat(self) -> None:
        while True:
            await self.heartbeat()
            await asyncio.sleep(self._heartbeat_s / 3)

    async def forget(self) -> None:
        """This replica stops: its slots are released at once."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(f"{self._prefix}:slots:{self._replica}")
            pipe.zrem(f"{self._prefix}:slots:replicas", self._replica)
            await pipe.execute()
