"""DatabaseFile on a real SQLite file: a deleted file is written back with every row, a replaced
one blocks new jobs and is left alone; the file is looked at no more than every CHECK_EVERY_S."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import structlog

from comfy_gateway.jobs import sqlite_file
from comfy_gateway.jobs.sqlite import _connect
from comfy_gateway.jobs.sqlite_file import DatabaseFile
from comfy_gateway.jobs.storage_faults import StorageFaults


def _opened(path: Path) -> tuple[DatabaseFile, sqlite3.Connection, StorageFaults]:
    faults = StorageFaults()
    file = DatabaseFile(path, _connect, faults, structlog.get_logger("test"))
    conn = _connect(path)
    conn.execute("INSERT INTO idempotency VALUES ('k1', 'job-1', 0)")
    conn.commit()
    file.opened()
    return file, conn, faults


def test_a_deleted_file_is_written_back_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    file, conn, faults = _opened(path)
    path.unlink()
    restored = file.check(conn)
    assert restored is not conn
    assert path.exists() and faults.blocking is None
    restored.close()
    with sqlite3.connect(path) as again:
        assert again.execute("SELECT * FROM idempotency").fetchall() == [("k1", "job-1", 0)]


def test_a_replaced_file_blocks_new_jobs_and_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    file, conn, faults = _opened(path)
    other = tmp_path / "other.db"
    other.write_bytes(b"someone else's file")
    os.replace(other, path)
    assert file.check(conn) is conn
    assert faults.blocking is not None and "replaced" in faults.blocking
    assert path.read_bytes() == b"someone else's file"
    conn.close()


def test_the_file_is_looked_at_once_per_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "jobs.db"
    file, conn, _ = _opened(path)
    monkeypatch.setattr(sqlite_file, "CHECK_EVERY_S", 60.0)
    file.check(conn)  # the first call looks, and the next look is a minute away
    path.unlink()
    assert file.check(conn) is conn  # not seen yet: the open connection goes on
    assert not path.exists()
    conn.close()
