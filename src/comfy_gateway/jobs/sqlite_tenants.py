"""Tenants in the SQLite job store: their columns, the fair-share choice of the next job, their turns.

The tenant and priority live in the job's JSON `data` like every other field; two generated
columns only index them. Which job a claim takes is described at `JobStore.claim`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping

from .model import compact_json

TENANT_COLUMNS = (
    "tenant TEXT GENERATED ALWAYS AS (COALESCE(json_extract(data, '$.tenant'), 'anonymous')) VIRTUAL",
    "priority INTEGER GENERATED ALWAYS AS (COALESCE(json_extract(data, '$.priority'), 0)) VIRTUAL",
)
TENANT_SCHEMA = """
CREATE INDEX IF NOT EXISTS jobs_tenant_queue ON jobs (tenant, created_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS jobs_tenant_running ON jobs (tenant) WHERE state = 'processing';
CREATE TABLE IF NOT EXISTS tenant_turns (
    tenant TEXT PRIMARY KEY,
    served INTEGER NOT NULL
);
"""

_RUNNING_BY_TENANT = "SELECT tenant, COUNT(*) FROM jobs WHERE state = 'processing' GROUP BY tenant"
# The tenants with pending jobs are found one index step each (a skip scan), then each one's oldest
# pending job, so a claim costs O(tenants x log(queue)), not a pass over the queue.
NEXT_FAIR = """
WITH RECURSIVE waiting(tenant) AS (
    SELECT MIN(tenant) FROM jobs INDEXED BY jobs_tenant_queue WHERE state = 'pending'
    UNION ALL
    SELECT (SELECT MIN(tenant) FROM jobs INDEXED BY jobs_tenant_queue
            WHERE state = 'pending' AND tenant > waiting.tenant)
    FROM waiting WHERE waiting.tenant IS NOT NULL
), heads(id) AS (
    SELECT (SELECT id FROM jobs WHERE state = 'pending' AND tenant = waiting.tenant
            AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
            ORDER BY created_at, rowid LIMIT 1)
    FROM waiting WHERE tenant IS NOT NULL AND tenant NOT IN (SELECT value FROM json_each(:capped))
)
SELECT jobs.id FROM heads JOIN jobs ON jobs.id = heads.id LEFT JOIN tenant_turns USING (tenant)
ORDER BY jobs.priority DESC, COALESCE(served, 0), jobs.created_at, jobs.rowid LIMIT 1"""
_TAKE_TURN = """
INSERT INTO tenant_turns (tenant, served) VALUES (:tenant, (SELECT COALESCE(MAX(served), 0) + 1 FROM tenant_turns))
ON CONFLICT (tenant) DO UPDATE SET served = excluded.served"""


def add_columns(conn: sqlite3.Connection) -> str:
    """What a jobs table of schema 2 needs before the schema script runs (nothing for a new file)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_xinfo(jobs)")}
    if not columns or "tenant" in columns:
        return ""
    return " ".join(f"ALTER TABLE jobs ADD COLUMN {column};" for column in TENANT_COLUMNS)


def next_fair(conn: sqlite3.Connection, caps: Mapping[str, int], types: Collection[str] | None = None) -> str | None:
    """The id of the job a claim takes now (of one of `types`, if given); run inside the claim's transaction."""
    running = dict(conn.execute(_RUNNING_BY_TENANT).fetchall()) if caps else {}
    capped = [tenant for tenant, cap in caps.items() if running.get(tenant, 0) >= cap]
    only = None if types is None else compact_json(sorted(types))
    head = conn.execute(NEXT_FAIR, {"capped": compact_json(capped), "types": only}).fetchall()
    return str(head[0][0]) if head else None


def take_turn(conn: sqlite3.Connection, tenant: str) -> None:
    """`tenant` was served now: the others come before it next time."""
    conn.execute(_TAKE_TURN, {"tenant": tenant})
