"""RedisJobStore: the JobStore shared by several gateway replicas.

A job is a hash (see `redis_keys` for every key). Each state change touches the job and its
indexes in one Lua script, so it is atomic across replicas; scripts are registered once per store.
Timestamps come from the caller's clock (`time.time()`), like the SQLite store: replicas need
synchronized clocks (NTP) for leases to mean the same thing everywhere. Needs a single Redis
server or primary (the scripts compute key names, so Redis Cluster is not supported).

`list` reads the most selective index newest first; with two or more filters it walks that index
in pages and checks the other filters on the jobs themselves, so its cost grows with how far back
the matches are. Jobs created in the same microsecond have no defined FIFO order among themselves.
`create` raises ValueError for a duplicate id; a store used before `open` or after `close` raises
RuntimeError.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from ..lifecycle import Lifecycle
from .model import Job, JobState, compact_json
from .outputs import Output
from .redis_keys import LUA_KEYS, RedisKeys
from .redis_scripts import (
    ADD_WEBHOOK_ATTEMPT,
    CLAIM,
    COUNTS,
    CREATE,
    CREATE_ONCE,
    DELETE,
    FENCED_SET,
    FINISH,
    INDEX_TENANTS,
    LUA_HELPERS,
    PLACE,
    REQUEUE,
    TAKE_OVER,
)
from .resource import OpenClose
from .storage_faults import REDIS_DOWN, StorageFaults, converting
from .store import Claimed, JobFilter, QueueStats, StoreCounts

_STR_FIELDS = frozenset(
    {"id", "type", "lease_owner", "instance", "prompt_id", "input_blob", "result_blob", "tenant"}
)
_INT_FIELDS = frozenset({"attempt", "priority"})
_FLOAT_FIELDS = frozenset(
    {"created_at", "updated_at", "lease_expires_at", "started_at", "finished_at", "progress", "expires_at",
     "canceling_at"}
)
_JSON_FIELDS = frozenset({"params", "input_meta", "result_meta", "error", "history", "webhook_deliveries",
                          "outputs", "placement", "trace_context"})
_LIST_PAGE = 200




def _num(value: float) -> str:
    return repr(float(value))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _score(job: Job) -> float:
    """What a job is first filed under: its lease expiry while processing, else its last change."""
    if job.state is JobState.PROCESSING:
        return job.lease_expires_at or 0.0
    return job.finished_at or job.updated_at


def _encode(job: Job) -> list[str]:
    """Field/value pairs for HSET; None values are left out."""
    pairs: list[str] = []
    for name, value in job.to_dict().items():
        if value is None:
            continue
        if name in _JSON_FIELDS:
            text = compact_json(value)
        elif name in _FLOAT_FIELDS:
            text = _num(value)
        else:
            text = str(value)
        pairs += (name, text)
    return pairs


def _decode(raw: dict[Any, Any] | Sequence[Any] | None) -> Job | None:
    if not raw:
        return None
    items = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    values: dict[str, Any] = {}
    for raw_name, raw_value in items:
        name, text = _text(raw_name), _text(raw_value)
        if name in _JSON_FIELDS:
            values[name] = json.loads(text)
        elif name in _FLOAT_FIELDS:
            values[name] = float(text)
        elif name in _INT_FIELDS:
            values[name] = int(text)
        elif name == "state":
            values[name] = JobState(text)
        elif name in _STR_FIELDS:
            values[name] = text
    return Job(**values)


def _pairs(flat: Sequence[Any]) -> dict[str, int]:
    return {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2) if int(flat[i + 1]) > 0}


@converting(REDIS_DOWN, "the job store (Redis)")
class RedisJobStore(OpenClose):
    """JobStore on Redis. Given a URL, the store owns its client; a given client stays the caller's."""

    def __init__(self, url_or_client: str | Redis, prefix: str = "cg", *, faults: StorageFaults | None = None) -> None:
        self.faults = faults
        if not prefix:
            raise ValueError("prefix must not be empty")
        self._url_or_client = url_or_client
        self._owns_client = isinstance(url_or_client, str)
        self._prefix = prefix
        self._keys = RedisKeys(prefix)
        self._phase = Lifecycle.NEW
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    async def open(self) -> None:
        if self._phase is Lifecycle.OPEN:
            return
        if self._phase is Lifecycle.CLOSED:
            raise RuntimeError("RedisJobStore is closed and cannot be reopened")
        source = self._url_or_client
        client = Redis.from_url(source) if isinstance(source, str) else source
        sources = {
            "create": CREATE, "create_once": CREATE_ONCE, "claim": CLAIM, "fenced_set": FENCED_SET, "finish": FINISH,
            "requeue": REQUEUE, "take_over": TAKE_OVER, "delete": DELETE, "counts": COUNTS,
            "place": PLACE,
            "add_webhook_attempt": ADD_WEBHOOK_ATTEMPT, "index_tenants": INDEX_TENANTS,
        }  # fmt: skip
        self._scripts = {
            name: client.register_script(LUA_KEYS + LUA_HELPERS + body) for name, body in sources.items()
        }
        self._client = client
        self._phase = Lifecycle.OPEN
        await self._call("index_tenants")  # jobs a gateway without tenants queued get their place

    async def close(self) -> None:
        was_open = self._phase is Lifecycle.OPEN
        self._phase = Lifecycle.CLOSED
        client, self._client = self._client, None
        if was_open and self._owns_client and client is not None:
            await client.aclose()

    @property
    def _redis(self) -> Redis:
        if self._phase is not Lifecycle.OPEN or self._client is None:
            raise RuntimeError(f"RedisJobStore is {self._phase.value}, not open")
        return self._client

    async def _call(self, script: str, *args: str) -> Any:
        client = self._redis
        return await self._scripts[script](keys=[], args=[self._prefix, *args], client=client)

    async def _fetch(self, ids: Iterable[Any]) -> list[Job]:
        ids = list(ids)
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self._keys.job(_text(job_id)))
            rows = await pipe.execute()
        return [job for job in map(_decode, rows) if job is not None]

    async def create(self, job: Job) -> None:
        if not await self._call("create", job.id, _num(_score(job)), *_encode(job)):
            raise ValueError(f"job {job.id} already exists")

    async def create_once(self, job: Job, key: str, ttl_seconds: float) -> tuple[Job, bool]:
        ttl_ms = str(max(1, int(ttl_seconds * 1000)))
        named = await self._call("create_once", job.id, _num(_score(job)), self._keys.idempotency(key), ttl_ms,
                                 *_encode(job))
        if named == 1:
            return job, True
        if named == 0:
            raise ValueError(f"job {job.id} already exists")
        existing = await self.get(_text(named))
        if existing is None:  # deleted since the script ran: the key is free again
            return await self.create_once(job, key, ttl_seconds)
        return existing, False

    async def get(self, job_id: str) -> Job | None:
        return _decode(await self._redis.hgetall(self._keys.job(job_id)))

    async def _claim(
        self, owner: str, lease_seconds: float, instance: str | None, job_id: str, caps: Mapping[str, int],
        types: Collection[str] | None = None,
    ) -> Claimed:
        now = time.time()
        has_instance = "0" if instance is None else "1"
        args = (_num(now), owner, _num(now + lease_seconds), has_instance, instance or "", job_id,
                compact_json(dict(caps)) if caps else "{}", "" if types is None else compact_json(sorted(types)))
        pending, *fields = await self._call("claim", *args)
        return Claimed(_decode(fields), more_pending=int(pending) > 0)

    async def claim(
        self, owner: str, lease_seconds: float, instance: str | None = None,
        caps: Mapping[str, int] | None = None, types: Collection[str] | None = None,
    ) -> Job | None:
        return (await self._claim(owner, lease_seconds, instance, "", caps or {}, types)).job

    async def claim_next(
        self, owner: str, lease_seconds: float, caps: Mapping[str, int] | None = None,
        types: Collection[str] | None = None,
    ) -> Claimed:
        return await self._claim(owner, lease_seconds, None, "", caps or {}, types)

    async def claim_job(
        self, job_id: str, owner: str, lease_seconds: float, instance: str | None = None
    ) -> Job | None:
        return (await self._claim(owner, lease_seconds, instance, job_id, {})).job

    async def _fenced_set(
        self, job_id: str, attempt: int, *fields: str, owner: str | None = None, lease: str = ""
    ) -> bool:
        check = "0" if owner is None else "1"
        args = (job_id, str(attempt), check, owner or "", lease, *fields, "updated_at", _num(time.time()))
        return bool(await self._call("fenced_set", *args))

    async def record_prompt(self, job_id: str, attempt: int, prompt_id: str) -> bool:
        return await self._fenced_set(job_id, attempt, "prompt_id", prompt_id)

    async def record_placement(self, job_id: str, attempt: int, instance: str, placement: dict[str, Any],
                               prompt_id: str | None = None) -> bool:
        args = (job_id, str(attempt), instance, compact_json(placement), _num(time.time()), prompt_id or "")
        return bool(await self._call("place", *args))

    async def set_progress(self, job_id: str, attempt: int, progress: float) -> bool:
        return await self._fenced_set(job_id, attempt, "progress", _num(progress))

    async def mark_canceling(self, job_id: str, attempt: int) -> bool:
        return await self._fenced_set(job_id, attempt, "canceling_at", _num(time.time()))

    async def renew_lease(self, job_id: str, attempt: int, owner: str, lease_seconds: float) -> bool:
        expires = _num(time.time() + lease_seconds)
        return await self._fenced_set(
            job_id, attempt, "lease_expires_at", expires, owner=owner, lease=expires
        )

    async def complete(
        self, job_id: str, attempt: int, result_blob: str, result_meta: dict[str, Any],
        outputs: Sequence[Output] = (), expires_at: float | None = None,
    ) -> Job | None:
        fields: tuple[str, ...] = ("result_blob", result_blob, "result_meta", compact_json(result_meta),
                                   "progress", "100.0", "outputs", compact_json([o.to_dict() for o in outputs]))
        if expires_at is not None:
            fields += ("expires_at", _num(expires_at))
        args = (job_id, str(attempt), JobState.COMPLETED.value, _num(time.time()), *fields)
        return _decode(await self._call("finish", *args))

    async def fail(self, job_id: str, attempt: int | None, error: dict[str, Any]) -> bool:
        fence = "" if attempt is None else str(attempt)
        args = (job_id, fence, JobState.FAILED.value, _num(time.time()), "error", compact_json(error))
        return bool(await self._call("finish", *args))

    async def requeue(self, job_id: str, attempt: int, error: dict[str, Any] | None = None) -> bool:
        return bool(await self._call("requeue", job_id, str(attempt), _num(time.time()), compact_json(error)))

    async def expired_leases(self, now: float) -> Sequence[Job]:
        ids = await self._redis.zrangebyscore(self._keys.leases, "-inf", _num(now))
        return [job for job in await self._fetch(ids) if job.state is JobState.PROCESSING]

    async def expire_lease(self, job_id: str, attempt: int) -> bool:
        return await self._fenced_set(job_id, attempt, "lease_expires_at", "0", lease="0")

    async def take_over(self, job_id: str, attempt: int, owner: str, lease_seconds: float) -> Job | None:
        now = time.time()
        args = (job_id, str(attempt), _num(now), owner, _num(now + lease_seconds))
        return _decode(await self._call("take_over", *args))

    async def claim_key(self, key: str, ttl_seconds: float) -> bool:
        ttl_ms = max(1, int(ttl_seconds * 1000))
        return bool(await self._redis.set(self._keys.idempotency(key), "", nx=True, px=ttl_ms))

    async def release_key(self, key: str) -> None:
        await self._redis.delete(self._keys.idempotency(key))

    async def list(self, flt: JobFilter) -> Sequence[Job]:
        if flt.limit <= 0:
            return []
        offset = max(flt.offset, 0)
        indexes = [self._keys.all]
        if flt.state is not None:
            indexes.append(self._keys.state(JobState(flt.state).value))
        if flt.type is not None:
            indexes.append(self._keys.type(flt.type))
        if flt.instance is not None:
            indexes.append(self._keys.instance(flt.instance))

        def matches(job: Job) -> bool:
            return (
                (flt.state is None or job.state == flt.state)
                and (flt.type is None or job.type == flt.type)
                and (flt.instance is None or job.instance == flt.instance)
                and (flt.before is None or (job.created_at, job.id) < flt.before)
            )

        redis = self._redis
        if len(indexes) <= 2 and flt.before is not None:  # its index from the key on
            ids = await self._ids_before(indexes[-1], flt.before, offset + flt.limit)
            return [job for job in await self._fetch(ids[offset:]) if matches(job)]
        if len(indexes) <= 2:  # at most one filter: its index answers exactly
            ids = await redis.zrevrange(indexes[-1], offset, offset + flt.limit - 1)
            return [job for job in await self._fetch(ids) if matches(job)]
        async with redis.pipeline(transaction=False) as pipe:
            for key in indexes[1:]:
                pipe.zcard(key)
            sizes = await pipe.execute()
        index = min(zip(sizes, indexes[1:], strict=True))[1]
        wanted, start = offset + flt.limit, 0
        found: list[Job] = []
        while len(found) < wanted:
            ids = await redis.zrevrange(index, start, start + _LIST_PAGE - 1)
            if not ids:
                break
            found += [job for job in await self._fetch(ids) if matches(job)]
            start += _LIST_PAGE
        return found[offset:wanted]

    async def _ids_before(self, index: str, before: tuple[float, str], count: int) -> Sequence[Any]:
        """The first `count` ids of `index`, newest first, after (created_at, id) `before`: the ids a
        zset holds under one score come in reverse order of their names, as the list wants them."""
        created, before_id = before
        ties = int(await self._redis.zcount(index, created, created))
        raw = cast(Sequence[tuple[Any, float]], await self._redis.zrevrangebyscore(
            index, created, "-inf", start=0, num=count + ties, withscores=True))
        return [member for member, score in raw if score < created or _text(member) < before_id][:count]

    async def counts(self) -> StoreCounts:
        states = [state.value for state in JobState]
        total, state_counts, by_type, by_instance = await self._call("counts", *states)
        by_state = dict(zip(states, map(int, state_counts), strict=True))
        return StoreCounts(int(total), by_state, _pairs(by_type), _pairs(by_instance))

    async def pending_count(self, tenant: str | None = None) -> int:
        key = self._keys.pending if tenant is None else self._keys.tenant_queue(tenant)
        return int(await self._redis.zcard(key))

    async def queue_position(self, job_id: str) -> int | None:
        rank = await self._redis.zrank(self._keys.pending, job_id)  # by created_at, then id
        return None if rank is None else int(cast(int, rank)) + 1

    async def finished_since(self, since: float) -> tuple[int, float | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcount(self._keys.finished, _num(since), "+inf")
            pipe.zrangebyscore(self._keys.finished, _num(since), "+inf", start=0, num=1, withscores=True)
            count, first = await pipe.execute()
        return int(count), (float(first[0][1]) if first else None)

    async def add_webhook_attempt(self, job_id: str, attempt: dict[str, Any]) -> bool:
        return bool(await self._call("add_webhook_attempt", job_id, compact_json(attempt)))

    async def delete(self, job_id: str) -> Job | None:
        return _decode(await self._call("delete", job_id))

    async def finished_before(self, cutoff: float, limit: int = 500, since: float = 0.0) -> Sequence[Job]:
        if limit <= 0:
            return []
        below = f"({_num(cutoff)}"  # exclusive
        ids = await self._redis.zrangebyscore(self._keys.finished, _num(since) if since > 0 else "-inf", below,
                                              start=0, num=limit)
        return [job for job in await self._fetch(ids) if job.state.finished]

    async def unfinished(self) -> Sequence[Job]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self._keys.pending, 0, -1)
            pipe.zrange(self._keys.leases, 0, -1)
            pending, processing = await pipe.execute()
        jobs = [job for job in await self._fetch([*pending, *processing]) if not job.state.finished]
        return sorted(jobs, key=lambda job: job.created_at)

    async def queue_stats(self) -> QueueStats:
        types = sorted(_text(name) for name in await self._redis.smembers(self._keys.types))
        pending, processing = self._keys.state(JobState.PENDING.value), self._keys.state(JobState.PROCESSING.value)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrange(pending, 0, 0, withscores=True)
            for name in types:
                pipe.zintercard(2, [pending, self._keys.type(name)])
                pipe.zintercard(2, [processing, self._keys.type(name)])
            oldest, *counts = await pipe.execute()
        stats = QueueStats(oldest_pending_created_at=float(oldest[0][1]) if oldest else None)
        for name, waiting, running in zip(types, counts[::2], counts[1::2], strict=True):
            if waiting:
                stats.pending_by_type[name] = int(waiting)
            if running:
                stats.processing_by_type[name] = int(running)
        return stats
