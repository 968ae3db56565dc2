"""CountingRotatingFileHandler on real files: it rolls over at the size limit counting what the file
held when opened, never rolls a file that is not a regular one, and asks the file system nothing
per line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from comfy_gateway.observability.log_files import CountingRotatingFileHandler


def _record(text: str) -> logging.LogRecord:
    return logging.LogRecord("test", logging.INFO, __file__, 1, text, None, None)


def test_an_existing_file_counts_toward_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "combined.log"
    path.write_text("x" * 1500 + "\n")
    handler = CountingRotatingFileHandler(path, maxBytes=2000, backupCount=2, encoding="utf-8")
    try:
        for n in range(10):
            handler.emit(_record(f"line {n:02d} " + "é" * 40))  # 90 bytes a line, 49 characters
    finally:
        handler.close()
    assert (tmp_path / "combined.log.1").read_text().startswith("x" * 1500)  # rolled before it overflowed
    for name in ("combined.log", "combined.log.1"):
        assert (tmp_path / name).stat().st_size <= 2000
    assert (tmp_path / "combined.log").read_text(encoding="utf-8").splitlines()[-1].startswith("line 09")


def test_a_file_that_is_not_regular_is_never_rolled_over(tmp_path: Path) -> None:
    handler = CountingRotatingFileHandler(os.devnull, maxBytes=10, backupCount=1)
    try:
        for n in range(5):
            handler.emit(_record(f"line {n}"))
        assert not handler.shouldRollover(_record("more"))
    finally:
        handler.close()


def test_no_stat_or_seek_per_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = CountingRotatingFileHandler(tmp_path / "combined.log", maxBytes=1 << 20, backupCount=1)
    asked: list[str] = []
    monkeypatch.setattr(os.path, "isfile", lambda p: asked.append(f"isfile {p}") or True)
    monkeypatch.setattr(os.path, "exists", lambda p: asked.append(f"exists {p}") or True)
    try:
        for n in range(100):
            handler.emit(_record(f"line {n}"))
    finally:
        handler.close()
    assert asked == []
    assert len((tmp_path / "combined.log").read_text().splitlines()) == 100
