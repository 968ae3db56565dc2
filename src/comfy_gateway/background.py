"""Tasks with an owner: every task spawned here is awaited when its owner closes.

`TaskOwner` holds one-shot tasks (a job's run, a webhook delivery): each one's outcome is retrieved
when it ends, so a crash is logged instead of lost, and `aclose()` cancels and awaits what still
runs. `BackgroundTasks` adds supervision for the long-lived loops of the gateway: a loop that
crashes is logged and, unless told otherwise, started again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

Logger = Callable[..., None]
T = TypeVar("T")


RECANCEL_S = 10.0  # a cancelled task still running after this is cancelled again


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has stopped.

    A cancellation can be lost inside a task (seen now and then in the cluster-metrics loop,
    which then ran on for ever and held up the shutdown; where it was lost is not known): one
    still running after `RECANCEL_S`, far longer than any clean-up here takes, is cancelled again.
    The caller's own cancellation still propagates: `asyncio.wait` never raises the task's
    CancelledError, so nothing here can mistake the task's for ours and swallow it."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=RECANCEL_S)


class TaskOwner:
    def __init__(self, log_exception: Logger) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log_exception = log_exception
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        if self._closed:
            coro.close()
            raise RuntimeError(f"cannot start {name}: its owner is closed")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log_exception("task crashed", task=task.get_name(), exc_info=exc)

    async def aclose(self) -> None:
        """Cancel every task still running and wait for all of them; closing twice is harmless.

        A task may still spawn its own clean-up while it stops; that one is awaited (and cancelled)
        too, and only then are new tasks refused."""
        while self._tasks:
            await asyncio.gather(*(cancel_and_wait(task) for task in list(self._tasks)))
        self._closed = True

    async def finish(self, coro: Coroutine[Any, Any, T], name: str) -> None:
        """Run a clean-up step that must not be cut short by a second cancellation of its caller:
        it runs in a task of this owner, so it goes on (owned) even if the caller stops waiting."""
        await asyncio.wait([self.spawn(coro, name)])


class BackgroundTasks(TaskOwner):
    def spawn_loop(self, factory: Callable[[], Awaitable[Any]], name: str, *,
                   restart_delay: float | None = 1.0) -> None:
        """Run `factory()` in a task; a crash is logged and, with `restart_delay`, retried."""

        async def supervise() -> None:
            while True:
                try:
                    await factory()
                    return
                except Exception:
                    self._log_exception("background task crashed", task=name)
                    if restart_delay is None:
                        return
                    await asyncio.sleep(restart_delay)

        self.spawn(supervise(), name)
