"""Background tasks owned by one object: spawned by the Gateway, cancelled and awaited on close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

Logger = Callable[..., None]


class BackgroundTasks:
    def __init__(self, log_exception: Logger) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log_exception = log_exception

    def spawn(self, factory: Callable[[], Awaitable[Any]], name: str, *, restart_delay: float | None = 1.0) -> None:
        """Run `factory()` in a task; a crash is logged and, with `restart_delay`, retried."""

        async def supervise() -> None:
            while True:
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self._log_exception("background task crashed", task=name)
                    if restart_delay is None:
                        return
                    await asyncio.sleep(restart_delay)

        task = asyncio.create_task(supervise(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
