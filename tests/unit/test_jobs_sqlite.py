"""SqliteJobStore specifics: pragmas, schema version, indexes used by the hot path."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from comfy_gateway.jobs.model import Job
from comfy_gateway.jobs.sqlite import SCHEMA_VERSION, SqliteJobStore


async def test_file_is_wal_with_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "jobs.db"
    async with SqliteJobStore(path) as store:
        await store.create(Job(id="x", type="t"))
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            query = "SELECT id FROM jobs WHERE state = 'pending' ORDER BY created_at, rowid LIMIT 1"
            plan = conn.execute(f"EXPLAIN QUERY PLAN {query}").fetchall()
        finally:
            conn.close()
    assert "jobs_state_created" in str(plan) and "TEMP B-TREE" not in str(plan)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = SqliteJobStore(path)
    with pytest.raises(RuntimeError, match="schema"):
        await store.open()
    await store.close()


async def test_calls_run_on_one_worker_thread(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path / "jobs.db") as store:
        seen = {await store._run(lambda conn: threading.get_ident()) for _ in range(5)}
        assert len(seen) == 1 and threading.get_ident() not in seen


async def test_a_version_2_file_is_upgraded_and_its_jobs_belong_to_the_anonymous_tenant(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteJobStore(path) as store:
        await store.create(Job(id="old", type="t"))
    conn = sqlite3.connect(path)  # back to what schema 2 had: no tenant columns, no turns
    try:
        conn.executescript("""
            DROP INDEX jobs_tenant_queue; DROP INDEX jobs_tenant_running; DROP TABLE tenant_turns;
            ALTER TABLE jobs DROP COLUMN tenant; ALTER TABLE jobs DROP COLUMN priority;
            UPDATE jobs SET data = json_remove(data, '$.tenant', '$.priority', '$.webhook_deliveries');
            PRAGMA user_version = 2;""")
    finally:
        conn.close()
    async with SqliteJobStore(path) as store:
        await store.create(Job(id="new", type="t", tenant="alice", created_at=0.0))
        assert await store.pending_count("anonymous") == 1 and await store.pending_count("alice") == 1
        claimed = await store.claim("w", 30.0, caps={"alice": 0})
        assert claimed is not None and (claimed.id, claimed.tenant, claimed.webhook_deliveries) == (
            "old", "anonymous", [])


async def test_the_fair_share_claim_walks_the_tenant_index_not_the_queue(tmp_path: Path) -> None:
    from comfy_gateway.jobs.sqlite_tenants import NEXT_FAIR

    path = tmp_path / "jobs.db"
    async with SqliteJobStore(path) as store:
        await store.create(Job(id="x", type="t", tenant="alice"))
    conn = sqlite3.connect(path)
    try:
        plans = [[row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {NEXT_FAIR}", {"capped": "[]", "types": types})]
                 for types in (None, '["t"]')]  # any type, or only those the free servers should run
    finally:
        conn.close()
    for plan in plans:
        assert any("jobs_tenant_queue (tenant>?)" in step for step in plan)
        assert not any(step.startswith("SCAN jobs") or "jobs_state_created" in step for step in plan), plan
