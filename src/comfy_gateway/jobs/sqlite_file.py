"""The file under an open SQLite connection, watched: deleted, it is written back; replaced, the
gateway stops admitting jobs and says so.

A deleted database file goes on working through the open connection (its inode lives while the
file is open), so nothing fails, yet a restart would find no jobs at all. A store call first
compares the path's inode with the one it opened (one stat; at most every CHECK_EVERY_S, since
a stat per call cost 2 % of the gateway's CPU at full load and a deleted file loses nothing
meanwhile). A deleted file is written back from the open connection with SQLite's backup API
and the connection reopened on it: no job is lost. A file replaced by another is not overwritten:
jobs already accepted go on through the open connection, no new job is admitted, and the error is
logged until an operator acts.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .storage_faults import StorageFaults

CHECK_EVERY_S = 0.2


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class DatabaseFile:
    def __init__(self, path: Path, connect: Callable[[Path], sqlite3.Connection], faults: StorageFaults | None,
                 log: Any) -> None:
        self._path = path
        self._connect = connect
        self._faults = faults
        self._log = log
        self._identity: tuple[int, int] | None = None
        self._next_check = 0.0

    def opened(self) -> None:
        self._identity = _identity(self._path)

    def check(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """The connection to use: `conn`, or a new one on the file written back."""
        clock = time.monotonic()
        if clock < self._next_check:
            return conn
        self._next_check = clock + CHECK_EVERY_S
        now = _identity(self._path)
        if now == self._identity:
            return conn
        if now is None:
            return self._write_back(conn)
        problem = f"the jobs database {self._path} was replaced by another file"
        if self._faults is not None:
            self._faults.block(problem)
        return conn

    def _write_back(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        self._log.error("The jobs database file was deleted; writing it back from the open connection",
                        path=str(self._path))
        tmp = self._path.with_name(self._path.name + ".restoring")
        try:
            with contextlib.closing(sqlite3.connect(tmp)) as copy:
                conn.backup(copy)
            conn.close()  # the last connection of the deleted file: its -wal and -shm go with it
            os.replace(tmp, self._path)
            restored = self._connect(self._path)
        except (sqlite3.Error, OSError) as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if self._faults is not None:
                self._faults.block(f"the jobs database {self._path} was deleted and could not be written back: {exc}")
            self._identity = _identity(self._path)  # do not try again on every call
            return conn
        self.opened()
        self._log.warning("The jobs database file was written back; no job was lost", path=str(self._path))
        return restored
