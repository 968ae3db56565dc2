"""WorkerThreads: the calls run off the loop, in order on one thread, errors come back, a call
canceled before it began is skipped, and stop() runs what was handed over first."""

from __future__ import annotations

import asyncio
import threading

import pytest

from comfy_gateway.jobs.worker_threads import WorkerThreads


async def test_calls_run_on_the_worker_thread_in_the_order_handed_over() -> None:
    threads = WorkerThreads("t")
    threads.start()
    seen: list[tuple[int, str]] = []

    def record(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * i

    try:
        results = await asyncio.gather(*(threads.run(record, i) for i in range(50)))
    finally:
        await threads.stop()
    assert results == [i * i for i in range(50)]
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"t_0"}


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    threads = WorkerThreads("t")
    threads.start()

    def fail() -> None:
        raise ValueError("no such row")

    try:
        with pytest.raises(ValueError, match="no such row"):
            await threads.run(fail)
        assert await threads.run(lambda: "still here") == "still here"
    finally:
        await threads.stop()


async def test_a_call_canceled_before_it_began_is_skipped_and_one_running_ends() -> None:
    threads = WorkerThreads("t")
    threads.start()
    began, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> str:
        began.set()
        release.wait(5)
        ran.append("slow")
        return "slow"

    try:
        running = asyncio.ensure_future(threads.run(slow))
        await asyncio.to_thread(began.wait, 5)
        queued = asyncio.ensure_future(threads.run(ran.append, "queued"))
        await asyncio.sleep(0)
        running.cancel()
        queued.cancel()
        release.set()
        assert await threads.run(lambda: "after") == "after"
    finally:
        await threads.stop()
    assert ran == ["slow"]  # the running one ended; the one still waiting never ran
    assert running.cancelled() and queued.cancelled()


async def test_stop_runs_what_was_handed_over_then_refuses_more() -> None:
    threads = WorkerThreads("t", count=3)
    threads.start()
    done: list[int] = []
    pending = [asyncio.ensure_future(threads.run(done.append, i)) for i in range(20)]
    await asyncio.sleep(0)
    await threads.stop()
    await asyncio.gather(*pending)
    assert sorted(done) == list(range(20))
    assert not threads.running
    with pytest.raises(RuntimeError, match="not running"):
        await threads.run(done.append, 99)
    assert not any(t.name.startswith("t_") for t in threading.enumerate())
