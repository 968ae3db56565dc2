from __future__ import annotations

import json
import logging
import logging.handlers
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from comfy_gateway.observability.logging import (
    close_logging,
    configure_logging,
    flush_logging,
    get_logger,
    installed_writers,
    parse_level,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    structlog.contextvars.clear_contextvars()
    yield
    close_logging()
    root.setLevel(level)
    structlog.contextvars.clear_contextvars()


def _lines(path: Path) -> list[dict[str, Any]]:
    flush_logging()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _ours() -> list[logging.Handler]:
    return list(installed_writers())


def test_lines_are_json_with_service_component_message_and_bound_context(tmp_path: Path) -> None:
    configure_logging("info", tmp_path, console=False)
    log = get_logger("job-processor")
    structlog.contextvars.bind_contextvars(request_id="req-1", job_id="job-9")
    log.info("Job completed", jobType="remove-background", processingDuration=3450)

    [entry] = _lines(tmp_path / "combined.log")
    assert TIMESTAMP.match(entry["timestamp"])
    assert entry["level"] == "info"
    assert entry["service"] == "comfy-gateway"
    assert entry["message"] == "Job completed"
    assert "event" not in entry
    assert entry["component"] == "job-processor"
    assert entry["request_id"] == "req-1"
    assert entry["job_id"] == "job-9"
    assert entry["jobType"] == "remove-background"
    assert entry["processingDuration"] == 3450


def test_error_log_holds_only_errors_with_their_stack(tmp_path: Path) -> None:
    configure_logging("debug", tmp_path, console=False)
    log = get_logger("server")
    log.debug("detail")
    log.info("fine")
    log.warning("odd")
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        log.exception("it broke")

    combined = _lines(tmp_path / "combined.log")
    assert [e["level"] for e in combined] == ["debug", "info", "warn", "error"]
    [error] = _lines(tmp_path / "error.log")
    assert error["message"] == "it broke"
    assert "RuntimeError: kaput" in error["exception"]
    assert "Traceback" in error["exception"]


def test_level_is_honoured(tmp_path: Path) -> None:
    configure_logging("warn", tmp_path, console=False)
    log = get_logger("server")
    log.info("hidden")
    log.debug("hidden too")
    log.warning("shown")
    assert [e["message"] for e in _lines(tmp_path / "combined.log")] == ["shown"]


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("error", logging.ERROR),
        ("WARN", logging.WARNING),
        ("warning", logging.WARNING),
        ("info", 20),
        ("debug", 10),
    ],
)
def test_parse_level(name: str, level: int) -> None:
    assert parse_level(name) == level


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="verbose"):
        parse_level("verbose")


def test_configuring_twice_does_not_duplicate_handlers_or_lines(tmp_path: Path) -> None:
    configure_logging("info", tmp_path, console=True)
    configure_logging("info", tmp_path, console=False)
    configure_logging("info", tmp_path, console=False)
    assert sorted(h.get_name() for h in _ours()) == ["comfy_gateway.combined", "comfy_gateway.error"]
    get_logger("server").info("once")
    assert [e["message"] for e in _lines(tmp_path / "combined.log")] == ["once"]


def test_logger_created_before_configuration_follows_it(tmp_path: Path) -> None:
    log = get_logger("early")
    configure_logging("info", tmp_path, console=False)
    log.info("after")
    [entry] = _lines(tmp_path / "combined.log")
    assert entry["component"] == "early"


def test_stdlib_records_share_the_format(tmp_path: Path) -> None:
    configure_logging("info", tmp_path, console=False)
    structlog.contextvars.bind_contextvars(request_id="abc")
    logging.getLogger("some.library").warning("careful %s", "there")
    [entry] = _lines(tmp_path / "combined.log")
    assert entry["message"] == "careful there"
    assert entry["component"] == "some.library"
    assert entry["level"] == "warn"
    assert entry["request_id"] == "abc"
    assert entry["service"] == "comfy-gateway"


def test_uvicorn_access_log_is_quiet(tmp_path: Path) -> None:
    configure_logging("debug", tmp_path, console=False)
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    logging.getLogger("uvicorn.error").info("Started server process")
    assert [e["message"] for e in _lines(tmp_path / "combined.log")] == ["Started server process"]


def test_files_rotate_at_the_size_limit(tmp_path: Path) -> None:
    configure_logging("info", tmp_path, console=False, max_bytes=2000, backup_count=2)
    log = get_logger("server")
    for i in range(200):
        log.info("filler line", n=i)
    flush_logging()
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("combined"))
    assert files == ["combined.log", "combined.log.1", "combined.log.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 2000
    # The newest line is in the live file, older ones rotated out.
    assert _lines(tmp_path / "combined.log")[-1]["n"] == 199


def test_lines_are_written_by_a_thread_of_their_own(tmp_path: Path) -> None:
    configure_logging("info", tmp_path, console=False)
    # On the logging side there is only the queue: the logging call renders and enqueues.
    [queued] = [h for h in logging.getLogger().handlers if (h.get_name() or "").startswith("comfy_gateway.")]
    assert isinstance(queued, logging.handlers.QueueHandler)
    writers = {h.get_name(): h for h in _ours()}
    assert all(isinstance(writers[f"comfy_gateway.{name}"], logging.FileHandler) for name in ("combined", "error"))
    get_logger("server").info("queued")
    assert [e["message"] for e in _lines(tmp_path / "combined.log")] == ["queued"]


def test_console_only_writes_no_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", None, console=True)
    get_logger("server").info("to the console")
    flush_logging()
    assert list(tmp_path.iterdir()) == []
    assert [h.get_name() for h in _ours()] == ["comfy_gateway.console"]
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "to the console"
