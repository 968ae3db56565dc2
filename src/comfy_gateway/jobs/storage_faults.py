"""Storage faults: a store's driver errors become the gateway's StorageError, and the latest fault
is remembered for /health and for admission.

A full disk, a read-only or deleted database, a Redis that does not answer: none of them is the
client's fault or a bug, and none may fail a job that was accepted. The stores raise StorageError
(InsufficientStorage for a full disk) in place of OSError, sqlite3 or redis errors; the API answers
503 or 507 with Retry-After; the job path leaves an accepted job where it is until storage is back.
"""

from __future__ import annotations

import errno
import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

from ..errors import InsufficientStorage, StorageError

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
FAULT_WINDOW_S = 10.0  # a fault with no successful write since is reported this long
# Methods of the stores that only read: that they work says nothing of a full disk or a read-only file.
READS = frozenset({"get", "list", "counts", "pending_count", "expired_leases", "finished_before", "unfinished",
                   "exists", "usage", "open", "close", "finished_since", "read", "presign", "queue_stats"})
RETRY_AFTER_S = 5

# What Redis raises when it is down, restarting or unreachable (after the client's own retries).
REDIS_DOWN: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, BusyLoadingError)

_C = TypeVar("_C", bound=type)


def storage_error(exc: BaseException, what: str) -> StorageError:
    """The gateway's error for a driver's `exc` raised while doing `what` (e.g. "the job store")."""
    if isinstance(exc, StorageError):
        return exc
    full = (isinstance(exc, OSError) and exc.errno in NO_SPACE) or "disk is full" in str(exc).lower()
    if full:
        return InsufficientStorage(f"{what} has no space left; retry later", retry_after=RETRY_AFTER_S)
    reason = str(exc).strip() or type(exc).__name__
    return StorageError(f"{what} is unavailable ({reason}); retry later", retry_after=RETRY_AFTER_S)


class StorageFaults:
    """What went wrong with storage lately, shared by the stores of one gateway.

    A fault is current until a write succeeds after it, or FAULT_WINDOW_S pass without another
    (an idle gateway whose disk was freed turns healthy again on its own). A `blocking` problem
    (the database file was replaced under the gateway) stays until it is cleared: no new job is
    admitted meanwhile."""

    def __init__(self, log: Any = None) -> None:
        self._log = log
        self._last: tuple[float, StorageError] | None = None
        self.blocking: str | None = None

    def failed(self, error: StorageError) -> StorageError:
        first = self._last is None
        self._last = (time.monotonic(), error)
        if first and self._log is not None:
            self._log.error("Storage failed", error=error.message, code=error.code)
        return error

    def succeeded(self) -> None:
        if self._last is not None:
            self._last = None
            if self._log is not None:
                self._log.info("Storage works again")

    def block(self, problem: str) -> None:
        if self.blocking != problem and self._log is not None:
            self._log.critical("Storage problem: no new jobs are admitted", problem=problem)
        self.blocking = problem

    def current(self) -> StorageError | None:
        """The error a new write would most likely meet now, if any."""
        if self.blocking is not None:
            return StorageError(f"{self.blocking}; no new jobs are admitted", retry_after=RETRY_AFTER_S)
        if self._last is None or time.monotonic() - self._last[0] > FAULT_WINDOW_S:
            return None
        return self._last[1]


def converting(errors: tuple[type[BaseException], ...], what: str) -> Callable[[_C], _C]:
    """A class decorator: every public coroutine method raises StorageError in place of `errors`,
    and reports to the instance's `faults` (a StorageFaults or None) when it has one."""

    def wrap(method: Callable[..., Any], writes: bool) -> Callable[..., Any]:
        @functools.wraps(method)
        async def converted(self: Any, *args: Any, **kwargs: Any) -> Any:
            faults: StorageFaults | None = getattr(self, "faults", None)
            try:
                result = await method(self, *args, **kwargs)
            except errors as exc:
                error = storage_error(exc, what)
                raise (faults.failed(error) if faults else error) from exc
            if faults is not None and writes:
                faults.succeeded()
            return result

        return converted

    def decorate(cls: _C) -> _C:
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(member):
                setattr(cls, name, wrap(member, writes=name not in READS))
        return cls

    return decorate
