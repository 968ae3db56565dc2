"""SqliteJobStore: the embedded default JobStore, one SQLite file in WAL mode.

One connection, and every call is a small function run on it: the point calls in place on the
event loop, the longer ones on the store's own thread, one at a time and in order (sqlite_calls.py).
Every state change is a single statement (autocommit) or one transaction, so it is atomic even when
another process shares the file.

Columns hold what is queried or fenced on; the rest of the Job (params, metadata, blob keys, error,
history) is one JSON column. `started_at` is set by the first claim only (queue wait is measured
once), `finished_at` when the job completes or fails, `updated_at` on every change.
`create` raises ValueError for a duplicate id; a store used before `open` or after `close` raises
RuntimeError.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import structlog

from ..lifecycle import Lifecycle
from .model import Job, JobState, compact_json
from .outputs import Output
from .resource import OpenClose
from .sqlite_calls import ConnectionCalls
from .sqlite_file import DatabaseFile
from .sqlite_tenants import TENANT_COLUMNS, TENANT_SCHEMA, add_columns, next_fair, take_turn
from .storage_faults import StorageFaults, converting
from .store import Claimed, JobFilter, QueueStats, StoreCounts
from .worker_threads import WorkerThreads

_T = TypeVar("_T")

SCHEMA_VERSION = 3  # 2: the idempotency table; 3: tenants (fair share)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    type             TEXT NOT NULL,
    state            TEXT NOT NULL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at REAL,
    instance         TEXT,
    prompt_id        TEXT,
    started_at       REAL,
    finished_at      REAL,
    progress         REAL NOT NULL DEFAULT 0,
    data             TEXT NOT NULL,
    {TENANT_COLUMNS[0]},
    {TENANT_COLUMNS[1]}
);
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_type_created ON jobs (type, created_at);
CREATE INDEX IF NOT EXISTS jobs_instance_created ON jobs (instance, created_at) WHERE instance IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (lease_expires_at) WHERE state = 'processing';
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS idempotency (
    key        TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires_at);
{TENANT_SCHEMA}"""

_COLUMNS = (
    "id", "type", "state", "created_at", "updated_at", "attempt", "lease_owner", "lease_expires_at",
    "instance", "prompt_id", "started_at", "finished_at", "progress",
)  # fmt: skip
# The rest of the Job lives in the JSON column `data`.
_DATA_FIELDS = ("params", "input_blob", "input_meta", "result_blob", "result_meta", "error", "history",
                "tenant", "priority", "webhook_deliveries", "outputs", "expires_at", "placement",
                "trace_context", "canceling_at")
_SELECT = ", ".join((*_COLUMNS, "data"))

_INSERT = f"INSERT INTO jobs ({_SELECT}) VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})"

_CLAIM_SET = """
UPDATE jobs SET state = 'processing', attempt = attempt + 1, lease_owner = :owner,
    lease_expires_at = :expires, instance = :instance, progress = 0.0,
    started_at = COALESCE(started_at, :now), updated_at = :now
"""
_CLAIM_ONE = f"{_CLAIM_SET} WHERE id = :id AND state = 'pending' RETURNING {_SELECT}"
_ANY_PENDING = "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'pending')"
_ADD_WEBHOOK_ATTEMPT = """
UPDATE jobs SET data = json_set(data, '$.webhook_deliveries', json_insert(
    COALESCE(json_extract(data, '$.webhook_deliveries'), json('[]')), '$[#]', json(:attempt)))
WHERE id = :id"""

_FENCE = "WHERE id = :id AND state = 'processing' AND attempt = :attempt"
_RECORD_PROMPT = f"UPDATE jobs SET prompt_id = :prompt_id, updated_at = :now {_FENCE}"
_RECORD_PLACEMENT = f"""
UPDATE jobs SET instance = :instance, updated_at = :now, prompt_id = coalesce(:prompt_id, prompt_id),
    data = json_set(data, '$.placement', json(:placement))
{_FENCE}"""
_SET_PROGRESS = f"UPDATE jobs SET progress = :progress, updated_at = :now {_FENCE}"
_MARK_CANCELING = f"UPDATE jobs SET updated_at = :now, data = json_set(data, '$.canceling_at', json(:at)) {_FENCE}"
_RENEW = f"UPDATE jobs SET lease_expires_at = :expires, updated_at = :now {_FENCE} AND lease_owner = :owner"
_COMPLETE = f"""
UPDATE jobs SET state = 'completed', finished_at = :now, updated_at = :now, progress = 100.0,
    lease_owner = NULL, lease_expires_at = NULL,
    data = json_set(data, '$.result_blob', :blob, '$.result_meta', json(:meta), '$.outputs', json(:outputs),
                    '$.expires_at', json(:expires_at))
{_FENCE}
RETURNING {_SELECT}"""
_FAIL_SET = """
UPDATE jobs SET state = 'failed', finished_at = :now, updated_at = :now,
    lease_owner = NULL, lease_expires_at = NULL, data = json_set(data, '$.error', json(:error))
"""
_FAIL_FENCED = f"{_FAIL_SET} {_FENCE}"
# Unfenced, a job fails only while it waits: one that runs belongs to its attempt (see `fail`).
_FAIL_PENDING = f"{_FAIL_SET} WHERE id = :id AND state = 'pending'"
# `at` goes in as JSON text so the float keeps every digit.
_REQUEUE = f"""
UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, instance = NULL,
    prompt_id = NULL, progress = 0.0, updated_at = :now,
    data = json_insert(data, '$.history[#]', json_object(
        'attempt', attempt, 'instance', instance, 'error', json(:error), 'at', json(:at)))
{_FENCE}"""
_EXPIRE = f"UPDATE jobs SET lease_expires_at = 0, updated_at = :now {_FENCE}"
_TAKE_OVER = f"""
UPDATE jobs SET attempt = attempt + 1, lease_owner = :owner, lease_expires_at = :expires, updated_at = :now
{_FENCE} AND (lease_expires_at IS NULL OR lease_expires_at <= :now)
RETURNING {_SELECT}"""
_EXPIRED = f"""
SELECT {_SELECT} FROM jobs
WHERE state = 'processing' AND (lease_expires_at IS NULL OR lease_expires_at <= ?)
ORDER BY lease_expires_at"""
_DELETE = f"DELETE FROM jobs WHERE id = ? RETURNING {_SELECT}"
_QUEUE_STATS = """
SELECT state, type, COUNT(*), MIN(created_at) FROM jobs
WHERE state IN ('pending', 'processing') GROUP BY state, type"""
_BY_IDEMPOTENCY_KEY = f"SELECT {_SELECT} FROM jobs WHERE id = (SELECT job_id FROM idempotency WHERE key = ?)"
_FINISHED_BEFORE = f"""
SELECT {_SELECT} FROM jobs
WHERE finished_at < ? AND finished_at >= ? AND state IN ('completed', 'failed') ORDER BY finished_at LIMIT ?"""
_UNFINISHED = f"""
SELECT {_SELECT} FROM jobs WHERE state IN ('pending', 'processing') ORDER BY created_at, rowid"""




def _row_to_job(row: Sequence[Any]) -> Job:
    values = dict(zip(_COLUMNS, row[:-1], strict=True))
    values["state"] = JobState(values["state"])
    values.update(json.loads(row[-1]))
    return Job(**values)


def _job_to_row(job: Job) -> tuple[Any, ...]:
    data = job.to_dict()
    return (*(data[name] for name in _COLUMNS), compact_json({name: data[name] for name in _DATA_FIELDS}))


def _connect(path: Path) -> sqlite3.Connection:
    # Used in place and on the store's thread, never both at once (sqlite_calls.py).
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=64, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{path} has job schema {version}; this gateway knows {SCHEMA_VERSION}")
        if version < SCHEMA_VERSION:
            upgrade = add_columns(conn)
            conn.executescript(f"BEGIN IMMEDIATE; {upgrade} {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run on the store's thread
        conn.execute("PRAGMA busy_timeout = 0")  # a call in place never waits for a lock
    except BaseException:
        conn.close()
        raise
    return conn


@converting((sqlite3.Error, OSError), "the job store")
class SqliteJobStore(OpenClose):
    """JobStore on one SQLite file; several stores (or processes) may share the file."""

    def __init__(self, path: Path, *, faults: StorageFaults | None = None, log: Any = None) -> None:
        self._path = Path(path)
        self._phase = Lifecycle.NEW
        self._thread = WorkerThreads("sqlite-jobs")
        self.faults = faults
        self._file = DatabaseFile(self._path, _connect, faults, log or structlog.get_logger("job-store"))
        self._calls = ConnectionCalls(self._thread, self._file, self._path)

    async def open(self) -> None:
        if self._phase is Lifecycle.OPEN:
            return
        if self._phase is Lifecycle.CLOSED:
            raise RuntimeError("SqliteJobStore is closed and cannot be reopened")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        try:
            self._calls.conn = await self._thread.run(_connect, self._path)
        except BaseException:
            await self._thread.stop()
            raise
        self._file.opened()
        self._phase = Lifecycle.OPEN

    async def close(self) -> None:
        if self._phase is not Lifecycle.OPEN:
            self._phase = Lifecycle.CLOSED
            return
        self._phase = Lifecycle.CLOSED
        await self._calls.checkpoints.finish()
        conn, self._calls.conn = self._calls.conn, None
        assert conn is not None
        try:
            await self._thread.run(self._calls.close_reader)
            await self._thread.run(conn.close)
        finally:
            await self._thread.stop()

    def _check_open(self) -> None:
        if self._phase is not Lifecycle.OPEN:
            raise RuntimeError(f"SqliteJobStore is {self._phase.value}, not open")

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """A read over many rows: on the store's thread, beside the point calls."""
        self._check_open()
        return await self._calls.read(fn)

    async def _here(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """A point call: in place."""
        self._check_open()
        return await self._calls.here(fn)

    async def _update(self, sql: str, params: dict[str, Any] | Sequence[Any]) -> bool:
        return await self._here(lambda conn: conn.execute(sql, params).rowcount == 1)

    async def _one(self, sql: str, params: dict[str, Any] | Sequence[Any]) -> Job | None:
        # fetchall() runs the statement to its end, which ends its implicit transaction.
        rows = await self._here(lambda conn: conn.execute(sql, params).fetchall())
        return _row_to_job(rows[0]) if rows else None

    async def _many(self, sql: str, params: Sequence[Any] = ()) -> list[Job]:
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [_row_to_job(row) for row in rows]

    async def create(self, job: Job) -> None:
        row = _job_to_row(job)

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT, row)
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"job {job.id} already exists") from exc

        await self._here(insert)

    async def create_once(self, job: Job, key: str, ttl_seconds: float) -> tuple[Job, bool]:
        row = _job_to_row(job)
        now = time.time()

        def create(conn: sqlite3.Connection) -> tuple[Job, bool]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM idempotency WHERE expires_at <= ?", (now,))
                found = conn.execute(_BY_IDEMPOTENCY_KEY, (key,)).fetchall()
                if found:
                    conn.execute("COMMIT")
                    return _row_to_job(found[0]), False
                try:
                    conn.execute(_INSERT, row)
                except sqlite3.IntegrityError as exc:
                    raise ValueError(f"job {job.id} already exists") from exc
                conn.execute("INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)", (key, job.id, now + ttl_seconds))
                conn.execute("COMMIT")
                return job, True
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        return await self._here(create)

    async def claim_key(self, key: str, ttl_seconds: float) -> bool:
        now = time.time()
        sql = ("INSERT INTO idempotency VALUES (?, '', ?) ON CONFLICT (key) DO UPDATE SET job_id = '',"
               " expires_at = excluded.expires_at WHERE idempotency.expires_at <= ?")
        return await self._update(sql, (key, now + ttl_seconds, now))

    async def release_key(self, key: str) -> None:
        await self._here(lambda conn: conn.execute("DELETE FROM idempotency WHERE key = ?", (key,)))

    async def get(self, job_id: str) -> Job | None:
        return await self._one(f"SELECT {_SELECT} FROM jobs WHERE id = ?", (job_id,))

    async def claim(
        self, owner: str, lease_seconds: float, instance: str | None = None,
        caps: Mapping[str, int] | None = None, types: Collection[str] | None = None,
    ) -> Job | None:
        return (await self._claim(None, owner, lease_seconds, instance, caps or {}, types)).job

    async def claim_next(
        self, owner: str, lease_seconds: float, caps: Mapping[str, int] | None = None,
        types: Collection[str] | None = None,
    ) -> Claimed:
        return await self._claim(None, owner, lease_seconds, None, caps or {}, types)

    async def claim_job(
        self, job_id: str, owner: str, lease_seconds: float, instance: str | None = None
    ) -> Job | None:
        return (await self._claim(job_id, owner, lease_seconds, instance, {})).job

    async def _claim(
        self, job_id: str | None, owner: str, lease_seconds: float, instance: str | None, caps: Mapping[str, int],
        types: Collection[str] | None = None,
    ) -> Claimed:
        now = time.time()
        params = {"id": job_id, "owner": owner, "expires": now + lease_seconds, "instance": instance, "now": now}

        def claim(conn: sqlite3.Connection) -> Claimed:
            conn.execute("BEGIN IMMEDIATE")  # the tenants' counts, the choice and the claim: one step
            try:
                if job_id is None:
                    params["id"] = next_fair(conn, caps, types)
                rows = conn.execute(_CLAIM_ONE, params).fetchall()
                job = _row_to_job(rows[0]) if rows else None
                if job is not None:
                    take_turn(conn, job.tenant)
                more = conn.execute(_ANY_PENDING).fetchone()[0]
                conn.execute("COMMIT")
                return Claimed(job, more_pending=bool(more))
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        return await self._here(claim)

    async def record_prompt(self, job_id: str, attempt: int, prompt_id: str) -> bool:
        params = {"id": job_id, "attempt": attempt, "prompt_id": prompt_id, "now": time.time()}
        return await self._update(_RECORD_PROMPT, params)

    async def record_placement(self, job_id: str, attempt: int, instance: str, placement: dict[str, Any],
                               prompt_id: str | None = None) -> bool:
        params = {"id": job_id, "attempt": attempt, "instance": instance, "placement": compact_json(placement),
                  "prompt_id": prompt_id, "now": time.time()}
        return await self._update(_RECORD_PLACEMENT, params)

    async def set_progress(self, job_id: str, attempt: int, progress: float) -> bool:
        params = {"id": job_id, "attempt": attempt, "progress": float(progress), "now": time.time()}
        return await self._update(_SET_PROGRESS, params)

    async def mark_canceling(self, job_id: str, attempt: int) -> bool:
        now = time.time()
        return await self._update(_MARK_CANCELING, {"id": job_id, "attempt": attempt, "now": now, "at": repr(now)})

    async def renew_lease(self, job_id: str, attempt: int, owner: str, lease_seconds: float) -> bool:
        now = time.time()
        params = {
            "id": job_id,
            "attempt": attempt,
            "owner": owner,
            "expires": now + lease_seconds,
            "now": now,
        }
        return await self._update(_RENEW, params)

    async def complete(
        self, job_id: str, attempt: int, result_blob: str, result_meta: dict[str, Any],
        outputs: Sequence[Output] = (), expires_at: float | None = None,
    ) -> Job | None:
        meta = compact_json(result_meta)
        params = {"id": job_id, "attempt": attempt, "blob": result_blob, "meta": meta, "now": time.time(),
                  "outputs": compact_json([o.to_dict() for o in outputs]), "expires_at": compact_json(expires_at)}
        return await self._one(_COMPLETE, params)

    async def fail(self, job_id: str, attempt: int | None, error: dict[str, Any]) -> bool:
        params = {"id": job_id, "attempt": attempt, "error": compact_json(error), "now": time.time()}
        return await self._update(_FAIL_PENDING if attempt is None else _FAIL_FENCED, params)

    async def requeue(self, job_id: str, attempt: int, error: dict[str, Any] | None = None) -> bool:
        now = time.time()
        params = {"id": job_id, "attempt": attempt, "error": compact_json(error), "now": now, "at": repr(now)}
        return await self._update(_REQUEUE, params)

    async def expired_leases(self, now: float) -> Sequence[Job]:
        return await self._many(_EXPIRED, (now,))

    async def expire_lease(self, job_id: str, attempt: int) -> bool:
        return await self._update(_EXPIRE, {"id": job_id, "attempt": attempt, "now": time.time()})

    async def take_over(self, job_id: str, attempt: int, owner: str, lease_seconds: float) -> Job | None:
        now = time.time()
        params = {
            "id": job_id,
            "attempt": attempt,
            "owner": owner,
            "expires": now + lease_seconds,
            "now": now,
        }
        return await self._one(_TAKE_OVER, params)

    async def list(self, flt: JobFilter) -> Sequence[Job]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("state", flt.state), ("type", flt.type), ("instance", flt.instance)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value.value if isinstance(value, JobState) else value)
        if flt.before is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [flt.before[0], flt.before[0], flt.before[1]]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_SELECT} FROM jobs {clause} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        return await self._many(sql, (*params, max(flt.limit, 0), max(flt.offset, 0)))

    async def counts(self) -> StoreCounts:
        def count(conn: sqlite3.Connection) -> StoreCounts:
            conn.execute("BEGIN")  # one snapshot for the three queries
            try:
                by_state = {state.value: 0 for state in JobState}
                by_state.update(conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
                by_type = dict(conn.execute("SELECT type, COUNT(*) FROM jobs GROUP BY type").fetchall())
                by_instance = dict(
                    conn.execute(
                        "SELECT instance, COUNT(*) FROM jobs WHERE instance IS NOT NULL GROUP BY instance"
                    ).fetchall()
                )
            finally:
                conn.execute("COMMIT")
            return StoreCounts(sum(by_state.values()), by_state, by_type, by_instance)

        return await self._run(count)

    async def pending_count(self, tenant: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM jobs WHERE state = 'pending'"
        if tenant is None:
            return int(await self._run(lambda conn: conn.execute(sql).fetchone()[0]))
        return int(await self._run(lambda conn: conn.execute(f"{sql} AND tenant = ?", (tenant,)).fetchone()[0]))

    async def queue_position(self, job_id: str) -> int | None:
        sql = ("SELECT COUNT(*) FROM jobs AS ahead,"
               " (SELECT created_at, id FROM jobs WHERE id = ? AND state = 'pending') AS me"
               " WHERE ahead.state = 'pending' AND (ahead.created_at < me.created_at"
               " OR (ahead.created_at = me.created_at AND ahead.id <= me.id))")
        count = int(await self._run(lambda conn: conn.execute(sql, (job_id,)).fetchone()[0]))
        return count or None

    async def finished_since(self, since: float) -> tuple[int, float | None]:
        sql = "SELECT COUNT(*), MIN(finished_at) FROM jobs WHERE finished_at >= ?"
        count, first = await self._run(lambda conn: conn.execute(sql, (since,)).fetchone())
        return int(count), first

    async def add_webhook_attempt(self, job_id: str, attempt: dict[str, Any]) -> bool:
        return await self._update(_ADD_WEBHOOK_ATTEMPT, {"id": job_id, "attempt": compact_json(attempt)})

    async def delete(self, job_id: str) -> Job | None:
        return await self._one(_DELETE, (job_id,))

    async def finished_before(self, cutoff: float, limit: int = 500, since: float = 0.0) -> Sequence[Job]:
        return await self._many(_FINISHED_BEFORE, (cutoff, since, max(limit, 0)))

    async def unfinished(self) -> Sequence[Job]:
        return await self._many(_UNFINISHED)

    async def queue_stats(self) -> QueueStats:
        rows = await self._run(lambda conn: conn.execute(_QUEUE_STATS).fetchall())
        stats = QueueStats()
        for state, job_type, count, oldest in rows:
            if state == JobState.PENDING.value:
                stats.pending_by_type[job_type] = count
                first = stats.oldest_pending_created_at
                stats.oldest_pending_created_at = oldest if first is None else min(first, oldest)
            else:
                stats.processing_by_type[job_type] = count
        return stats
