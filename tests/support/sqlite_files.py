"""SQLite files under a store: another writer holding the lock; writes reaching the database file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from support.waiting import eventually

_T = TypeVar("_T")


async def done_after_the_lock_is_released(db: Path, call: Awaitable[_T]) -> _T:
    """`call` started while another connection holds `db`'s write lock: it must not finish, nor hold
    the loop, until the lock is released; then it must finish. Its result."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    task = asyncio.ensure_future(call)
    try:
        ticks = 0
        for _ in range(10):  # the loop goes on meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10 and not task.done()
    finally:
        other.execute("COMMIT")
        other.close()
    return await asyncio.wait_for(task, timeout=5)


async def checkpointed(db: Path, write: Callable[[int], Awaitable[object]], times: int) -> None:
    """`write(n)` for n below `times`, then wait until the database file itself has grown: with
    SQLite's own checkpoints off, only the store's checkpoint moves the WAL's pages there."""
    before = _size(db)
    for n in range(times):
        await write(n)
    await eventually(lambda: _size(db) > before, what=f"a checkpoint of {db.name}")


def _size(db: Path) -> int:
    return db.stat().st_size
