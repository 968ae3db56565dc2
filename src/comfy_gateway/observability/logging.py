"""Structured JSON logs: structlog over the standard library, configured once by the app.

Every line is one JSON object:

    {"timestamp": "2025-06-04T12:44:18.415Z", "level": "info", "service": "comfy-gateway",
     "message": "Job completed", "component": "dispatcher", "request_id": "...", "job_id": "..."}

- `timestamp` is ISO 8601 in UTC with milliseconds and a `Z` (sorts as text, parses everywhere).
- `level` uses the names of LOG_LEVEL: error, warn, info, debug (plus critical).
- `message` is what structlog calls `event`, renamed to match the log format clients already parse.
- Context bound with `structlog.contextvars.bind_contextvars` (request_id, job_id, instance, ...)
  lands on every line emitted while it is bound; records from other libraries get the same shape,
  with `component` set to their logger name.

Handlers: stderr (optional), `log_dir/combined.log` (everything at the configured level) and
`log_dir/error.log` (ERROR and above), both rotating at `max_bytes` keeping `backup_count` files.
A line is rendered where it is logged (so it carries that task's context), then queued; one
background thread writes what has gathered every 50 ms, so no disk or pipe write ever blocks the
event loop (QueueHandler/QueueListener). `flush_logging()` waits until everything queued is
written; a clean exit writes it all, a SIGKILL can lose the lines of its last 50 ms.
Calling `configure_logging` again replaces the handlers it installed before; it never adds twice.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from .. import fast_json
from .log_files import CountingRotatingFileHandler
from .timestamps import iso
from .tracing import add_trace_ids

SERVICE_NAME = "comfy-gateway"
LOGGER_NAMESPACE = "comfy_gateway"
_HANDLER_PREFIX = "comfy_gateway."

_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
_LEVEL_NAMES = {"warning": "warn"}

# Libraries that log every request or connection at INFO; their warnings still come through.
_CHATTY_LOGGERS = ("httpx", "httpcore", "aiohttp.access", "websockets", "asyncio")


def parse_level(level: str) -> int:
    """LOG_LEVEL text to a `logging` level; raises ValueError for an unknown name."""
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}; use one of {sorted(_LEVELS)}") from None


def _add_timestamp(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict["timestamp"] = iso(time.time())
    return event_dict


def _add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("service", SERVICE_NAME)
    return event_dict


def _rename_level(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    level = event_dict.get("level")
    if isinstance(level, str):
        event_dict["level"] = _LEVEL_NAMES.get(level, level)
    return event_dict


def _component_from_record(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Records from plain `logging` users (uvicorn, libraries) are tagged with their logger name."""
    record = event_dict.get("_record")
    if "component" not in event_dict and isinstance(record, logging.LogRecord):
        event_dict["component"] = record.name
    return event_dict


def _dumps(event: EventDict, **_: Any) -> str:
    """One line of JSON (a line per request and two per job: the fast encoder pays)."""
    return fast_json.dumps(event, default=str).decode()


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        _add_timestamp,
        _add_service,
        add_trace_ids,
    ]


def _formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), _component_from_record],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _rename_level,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
    )


class _Line:
    """A rendered line on its way to the writers: what `Formatter("%(message)s")` and handler level
    checks read of a LogRecord, and nothing else."""

    exc_info = exc_text = stack_info = args = None

    def __init__(self, message: str, levelno: int) -> None:
        self.msg = self.message = message
        self.levelno = levelno

    def getMessage(self) -> str:  # the LogRecord method the formatter calls
        return self.message


class _Flushed:
    """Queued behind the lines to wait for: the writer thread sets `done` when it reaches it."""

    levelno = logging.CRITICAL

    def __init__(self) -> None:
        self.done = threading.Event()


class _Batches:
    """The queue between the logging threads and the writer: `put_nowait` appends a line and wakes
    nobody (waking a thread per line cost more than rendering it); the writer takes what has
    gathered every WRITE_EVERY_S, and at once when a flush or the stop is queued."""

    WRITE_EVERY_S = 0.05

    def __init__(self) -> None:
        self._lines: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()

    def put_nowait(self, item: Any) -> None:
        self._lines.append(item)  # deque.append is atomic: no lock needed
        if item is None or isinstance(item, _Flushed):  # None: QueueListener's stop sentinel
            self._wake.set()

    def get(self, block: bool = True) -> Any:
        while True:
            try:
                return self._lines.popleft()
            except IndexError:
                pass
            self._wake.wait(self.WRITE_EVERY_S)
            self._wake.clear()  # the deque is read again after this: nothing set before is missed


class _Writer(logging.handlers.QueueListener):
    def handle(self, record: logging.LogRecord) -> None:
        if isinstance(record, _Flushed):
            record.done.set()
            return
        super().handle(record)


class _QueuedWriters(logging.handlers.QueueHandler):
    """Renders each record once, on the thread that logs it, and queues the line for `writers`,
    which a QueueListener thread feeds (each at its own level)."""

    FLUSH_WAIT_S = 10.0

    def __init__(self, writers: list[logging.Handler]) -> None:
        super().__init__(cast("queue.Queue[Any]", _Batches()))
        for writer in writers:
            writer.setFormatter(logging.Formatter("%(message)s"))  # the line is rendered already
        self.listener = _Writer(self.queue, *writers, respect_handler_level=True)
        self.listener.start()
        self._running = True

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The writers need only the rendered line and its level: no copy of the whole record.
        return cast(logging.LogRecord, _Line(self.format(record), record.levelno))

    @property
    def writers(self) -> tuple[logging.Handler, ...]:
        return tuple(self.listener.handlers)

    def flush(self) -> None:
        """Wait until every line queued so far has been written."""
        if self._running:
            mark = _Flushed()
            self.queue.put_nowait(mark)
            mark.done.wait(self.FLUSH_WAIT_S)

    def close(self) -> None:
        """Write what is still queued, stop the thread, close the writers; twice is harmless."""
        if self._running:
            self._running = False
            self.listener.stop()
            for writer in self.listener.handlers:
                writer.close()
        super().close()


def _named(handler: logging.Handler, name: str, level: int) -> logging.Handler:
    handler.set_name(_HANDLER_PREFIX + name)
    handler.setLevel(level)
    return handler


def _remove_our_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if (handler.get_name() or "").startswith(_HANDLER_PREFIX):
            root.removeHandler(handler)
            handler.close()


def configure_logging(
    level: str,
    log_dir: Path | None,
    *,
    console: bool = True,
    max_bytes: int = 5 * 1024 * 1024,
    backup_count: int = 5,
) -> None:
    """Route structlog and stdlib logging to JSON lines on stderr and in `log_dir`.

    Safe to call again (tests do): the handlers of the previous call are closed and replaced.
    """
    numeric_level = parse_level(level)
    _skip_unused_record_fields()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    root = logging.getLogger()
    _remove_our_handlers(root)
    root.setLevel(numeric_level)

    writers: list[logging.Handler] = []
    if console:
        writers.append(_named(logging.StreamHandler(sys.stderr), "console", numeric_level))
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        for name, file_level in (("combined", numeric_level), ("error", logging.ERROR)):
            file_handler = CountingRotatingFileHandler(
                log_dir / f"{name}.log", maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
            )
            writers.append(_named(file_handler, name, max(file_level, numeric_level)))
    if writers:
        queued = _named(_QueuedWriters(writers), "queue", numeric_level)
        queued.setFormatter(_formatter())
        root.addHandler(queued)

    _quiet_servers()


def _skip_unused_record_fields() -> None:
    """No line shows the caller's file and line, thread or process: the logging HOWTO's
    "Optimization" switches, so that a record does not look them up (a frame walk per line)."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def installed_writers() -> tuple[logging.Handler, ...]:
    """The handlers that write the lines (console, files), behind the queue."""
    return tuple(w for h in logging.getLogger().handlers if isinstance(h, _QueuedWriters) for w in h.writers)


def flush_logging() -> None:
    """Wait until every line logged so far has been written (tests read the files right after)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _QueuedWriters):
            handler.flush()


def close_logging() -> None:
    """Write what is queued, then detach and close the handlers `configure_logging` installed."""
    _remove_our_handlers(logging.getLogger())


def _quiet_servers() -> None:
    # The gateway writes its own access line per request (api/middleware.py).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.setLevel(logging.WARNING)
    access.propagate = False
    # uvicorn's startup and error messages go through the JSON handlers on the root logger.
    for name in ("uvicorn", "uvicorn.error"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(component: str, **context: Any) -> structlog.stdlib.BoundLogger:
    """A logger whose lines carry `component` (and any extra `context`) as fields."""
    # Stays lazy until first use, so a logger made before `configure_logging` still obeys it.
    return structlog.stdlib.get_logger(f"{LOGGER_NAMESPACE}.{component}", component=component, **context)
