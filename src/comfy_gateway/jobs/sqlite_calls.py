"""Where a call on the jobs database runs: in place on the event loop, or on the store's thread.

A point call (one job by its id, a claim, a state change) takes tens of microseconds in SQLite.
Handing it to a thread and back cost more than that on a busy loop: the thread's wake-up, and the
GIL changing hands several times per call, as the driver lets go of it around each step. So point
calls run in place. The thread keeps what can take longer: reads over many rows (lists, counts,
the janitor's), on a connection of their own, and any call that finds the file locked by another
connection, which waits for it there (busy_timeout) instead of on the loop. The main connection
serves the point calls and those, never at the same time: while a call of its is on the thread,
later calls queue behind it there, so calls still run in the order they were made. A read does
not hold them back: WAL lets a reader see every commit made before it began while writes go on
(a burst of submissions, each counting the queue for its 202, had made every claim and insert
wait behind those counts: 11-17 ms each).

The WAL checkpoints run on the thread too, on a short-lived connection of their own, while point
calls go on in place (SQLite's automatic ones are off: they would run inside whichever commit
crossed the threshold, on the loop, fsync included).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import structlog

from .sqlite_file import DatabaseFile
from .worker_threads import WorkerThreads

_T = TypeVar("_T")

CHECKPOINT_EVERY = 500  # calls (either way) between two checkpoints
BUSY_WAIT_MS = 5000  # how long a call on the thread waits for a lock held by another connection
_LOCKED = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (the low byte of the extended codes)
log = structlog.get_logger("job-store")


def locked(exc: sqlite3.OperationalError) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _LOCKED


def _checkpoint(path: Path) -> None:
    """A PASSIVE checkpoint on a connection of its own, so that point calls go on in place meanwhile.
    `mode=rw`: a file deleted meanwhile is not made anew here (the next call writes it back)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=rw", uri=True)) as conn:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class Checkpoints:
    """When a store checkpoints its WAL: once `add` has counted `every` (calls, bytes) since the
    last one, `run` starts in the background; never two at a time, a failure logged and retried
    at the next threshold."""

    def __init__(self, run: Callable[[], Awaitable[None]], what: str) -> None:
        self._run = run
        self._what = what
        self._since = 0
        self._task: asyncio.Task[None] | None = None

    def add(self, amount: int, every: int) -> None:
        self._since += amount
        if self._since < every or not (self._task is None or self._task.done()):
            return
        self._since = 0
        self._task = asyncio.ensure_future(self._run())
        self._task.add_done_callback(self._report)

    async def finish(self) -> None:
        """Wait for a checkpoint under way (before the connection closes)."""
        if self._task is not None:
            await asyncio.wait([self._task])

    def _report(self, done: asyncio.Task[None]) -> None:
        if not done.cancelled() and (exc := done.exception()) is not None:
            log.warning(f"checkpoint of {self._what} failed; the next one tries again", error=str(exc))


class ConnectionCalls:
    """The connection of one store, and the two ways a call reaches it."""

    def __init__(self, thread: WorkerThreads, file: DatabaseFile, path: Path) -> None:
        self._thread = thread
        self._file = file
        self._path = path
        self.conn: sqlite3.Connection | None = None
        self._on_thread = 0  # calls handed to the thread and not yet back
        self._reader: sqlite3.Connection | None = None  # the reads' own, used on the thread only
        self._reader_beside: sqlite3.Connection | None = None  # the main connection it was opened beside
        self.checkpoints = Checkpoints(lambda: self._thread.run(_checkpoint, path), "the jobs database")

    async def here(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """`fn` in place, unless the thread has the connection or the file is locked."""
        if self._on_thread:
            return await self.there(fn)
        try:
            result = self._call(fn, False)
        except sqlite3.OperationalError as exc:
            if not locked(exc):
                raise
            return await self.there(fn)  # nothing was written: each call is one statement or rolls back
        self.checkpoints.add(1, CHECKPOINT_EVERY)
        return result

    async def there(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """`fn` on the thread, waiting there for a lock if it must."""
        self._on_thread += 1
        try:
            result: _T = await self._thread.run(self._call, fn, True)
        finally:
            self._on_thread -= 1
        self.checkpoints.add(1, CHECKPOINT_EVERY)
        return result

    async def read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """`fn`, which only reads, on the thread and on the reads' connection."""
        return await self._thread.run(self._read, fn)

    def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._reader is not None and self._reader_beside is not self.conn:  # the file was written back
            self.close_reader()
        if self._reader is None:
            self._reader = sqlite3.connect(f"file:{self._path}?mode=rw", uri=True, isolation_level=None,
                                           check_same_thread=False)
            self._reader.execute(f"PRAGMA busy_timeout = {BUSY_WAIT_MS}")
            self._reader_beside = self.conn
        return fn(self._reader)

    def close_reader(self) -> None:
        """On the thread (or once it is stopped)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _call(self, fn: Callable[[sqlite3.Connection], _T], waits: bool) -> _T:
        """The file checked (deleted, replaced), then `fn` on the connection."""
        assert self.conn is not None
        conn = self.conn = self._file.check(self.conn)
        if not waits:
            return fn(conn)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_WAIT_MS}")
        try:
            return fn(conn)
        finally:
            conn.execute("PRAGMA busy_timeout = 0")
