"""Owned tasks: cancellation reaches the caller, crashes are logged, closing waits for every task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from comfy_gateway import background
from comfy_gateway.background import BackgroundTasks, TaskOwner, cancel_and_wait


class Crashes:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, message: str, **context: Any) -> None:
        self.seen.append((message, context))


async def test_cancel_and_wait_lets_the_callers_own_cancellation_through() -> None:
    stopping = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            stopping.set()
            await asyncio.sleep(0.5)  # cleans up for a while after its cancel

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    # Our caller gives up while the task still stops: the timeout must fire, not be swallowed.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await cancel_and_wait(task)
    assert stopping.is_set()
    await asyncio.wait([task])
    assert task.cancelled()


async def test_a_task_that_loses_its_cancellation_is_cancelled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "RECANCEL_S", 0.05)
    cancels = 0

    async def loses_the_first_cancel() -> None:
        nonlocal cancels
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancels += 1
                if cancels > 1:
                    raise

    task = asyncio.create_task(loses_the_first_cancel())
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert task.cancelled() and cancels == 2


async def test_a_crash_is_logged_with_the_task_name_and_retrieved() -> None:
    crashes = Crashes()
    owner = TaskOwner(crashes)

    async def boom() -> None:
        raise RuntimeError("kaput")

    task = owner.spawn(boom(), "boom-1")
    await asyncio.wait([task])
    await asyncio.sleep(0)
    [(message, context)] = crashes.seen
    assert message == "task crashed" and context["task"] == "boom-1"
    assert isinstance(context["exc_info"], RuntimeError)
    assert len(owner) == 0


async def test_closing_cancels_and_awaits_every_task_and_refuses_new_ones() -> None:
    owner = TaskOwner(Crashes())
    started = asyncio.Event()
    tasks = [owner.spawn(asyncio.sleep(30), f"sleeper-{n}") for n in range(3)]
    tasks.append(owner.spawn(started.wait(), "waiter"))
    await asyncio.sleep(0)
    await owner.aclose()
    assert all(task.done() for task in tasks) and len(owner) == 0
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="closed"):
        owner.spawn(coro, "late")
    await owner.aclose()  # twice is harmless


async def test_a_supervised_loop_is_started_again_after_a_crash() -> None:
    crashes = Crashes()
    tasks = BackgroundTasks(crashes)
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("again")
        done.set()

    tasks.spawn_loop(flaky, "flaky", restart_delay=0.01)
    async with asyncio.timeout(5):
        await done.wait()
    await tasks.aclose()
    assert runs == [0, 1, 2]
    assert [c["task"] for _, c in crashes.seen] == ["flaky", "flaky"]


async def test_a_clean_up_step_outlives_its_callers_cancellation_and_is_still_owned() -> None:
    owner = TaskOwner(Crashes())
    cleaned = asyncio.Event()

    async def clean_up() -> None:
        await asyncio.sleep(0.2)
        cleaned.set()

    caller = asyncio.create_task(owner.finish(clean_up(), "clean-up"))
    await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.wait([caller])
    assert caller.cancelled() and not cleaned.is_set() and len(owner) == 1
    async with asyncio.timeout(5):
        await cleaned.wait()
    await owner.aclose()
    assert len(owner) == 0
