"""ConnectionCalls: point calls in place, the rest on the thread, one at a time and in order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from comfy_gateway.jobs import sqlite_calls, sqlite_file
from comfy_gateway.jobs.sqlite import _connect
from comfy_gateway.jobs.sqlite_calls import ConnectionCalls
from comfy_gateway.jobs.sqlite_file import DatabaseFile
from comfy_gateway.jobs.worker_threads import WorkerThreads
from support.sqlite_files import checkpointed, done_after_the_lock_is_released

INSERT = "INSERT INTO idempotency VALUES (?, 'job', 0)"


@pytest.fixture
async def calls(tmp_path: Path) -> AsyncIterator[ConnectionCalls]:
    thread = WorkerThreads("test-sqlite")
    thread.start()
    file = DatabaseFile(tmp_path / "jobs.db", _connect, None, structlog.get_logger("test"))
    made = ConnectionCalls(thread, file, tmp_path / "jobs.db")
    made.conn = await thread.run(_connect, tmp_path / "jobs.db")
    file.opened()
    yield made
    await made.checkpoints.finish()
    await thread.run(made.close_reader)
    await thread.run(made.conn.close)
    await thread.stop()


def _where(conn: sqlite3.Connection) -> str:
    return threading.current_thread().name


async def test_a_point_call_runs_in_place_and_a_long_one_on_the_thread(calls: ConnectionCalls) -> None:
    assert await calls.here(_where) == threading.current_thread().name
    assert (await calls.there(_where)).startswith("test-sqlite")


async def test_calls_made_while_the_thread_has_the_connection_queue_behind_it(calls: ConnectionCalls) -> None:
    ran: list[str] = []

    def slow(conn: sqlite3.Connection) -> None:
        time.sleep(0.2)
        ran.append("slow")

    def quick(conn: sqlite3.Connection) -> str:
        ran.append("quick")
        return _where(conn)

    on_thread = asyncio.create_task(calls.there(slow))
    await asyncio.sleep(0.05)  # the slow call is running
    where = await calls.here(quick)
    await on_thread
    assert ran == ["slow", "quick"] and where.startswith("test-sqlite")


async def test_a_locked_file_is_waited_for_on_the_thread(calls: ConnectionCalls, tmp_path: Path) -> None:
    insert = calls.here(lambda conn: conn.execute(INSERT, ("k",)).rowcount)
    assert await done_after_the_lock_is_released(tmp_path / "jobs.db", insert) == 1


async def test_checkpoints_run_every_so_many_calls(
    calls: ConnectionCalls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_calls, "CHECKPOINT_EVERY", 20)
    await checkpointed(tmp_path / "jobs.db", lambda n: calls.here(
        lambda conn: conn.execute(INSERT, (f"key-{n:04d}-" + "x" * 200,))), 60)


async def test_a_long_read_does_not_hold_back_point_calls(calls: ConnectionCalls) -> None:
    await calls.here(lambda conn: conn.execute(INSERT, ("before",)))
    ran: list[str] = []

    def slow_read(conn: sqlite3.Connection) -> list[str]:
        keys = [row[0] for row in conn.execute("SELECT key FROM idempotency")]
        time.sleep(0.2)
        ran.append("read")
        return keys

    reading = asyncio.create_task(calls.read(slow_read))
    await asyncio.sleep(0.05)  # the read is running on the thread
    where = await calls.here(lambda conn: (conn.execute(INSERT, ("during",)), _where(conn))[1])
    ran.append("point")
    assert await reading == ["before"]
    assert ran == ["point", "read"] and where == threading.current_thread().name


async def test_reads_follow_the_file_when_it_is_written_back(
    calls: ConnectionCalls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_file, "CHECK_EVERY_S", 0.0)
    count = "SELECT COUNT(*) FROM idempotency"
    await calls.here(lambda conn: conn.execute(INSERT, ("one",)))
    assert await calls.read(lambda conn: conn.execute(count).fetchone()[0]) == 1
    (tmp_path / "jobs.db").unlink()
    await calls.here(lambda conn: conn.execute(INSERT, ("two",)))  # written back first, then inserted
    assert (tmp_path / "jobs.db").exists()
    assert await calls.read(lambda conn: conn.execute(count).fetchone()[0]) == 2
