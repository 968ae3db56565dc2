"""Free memory malloc keeps after a burst is given back to the system."""

from __future__ import annotations

import ctypes

import pytest

from comfy_gateway.memory_trim import MemoryTrimmer, resident_bytes

MB = 1024 * 1024
pytestmark = pytest.mark.skipif(not MemoryTrimmer(1.0).available, reason="needs glibc and /proc")


async def test_nothing_happens_while_the_resident_size_stays_put():
    trimmer = MemoryTrimmer(1.0, min_growth=64 * MB)
    assert not await trimmer.check()
    assert trimmer.trims == 0


async def test_the_holes_a_burst_leaves_are_released():
    # Holes earlier tests left in this process would take the burst without any growth: gone first.
    ctypes.CDLL(None).malloc_trim(0)
    trimmer = MemoryTrimmer(1.0, min_growth=16 * MB)
    # 100 KB buffers come from malloc's heap (below its mmap threshold); every tenth stays alive,
    # so the heap cannot shrink from its top and the freed ones stay resident.
    buffers = [b"x" * 100_000 for _ in range(600)]
    kept = buffers[::10]
    del buffers
    before = resident_bytes()
    assert before is not None
    assert await trimmer.check()
    after = resident_bytes()
    assert after is not None and after < before - 16 * MB
    assert len(kept) == 60 and trimmer.trims == 1
    assert await trimmer.check()  # the growth stopped: once more, for what was in flight at the first
    assert not await trimmer.check()  # nothing grew since
    assert trimmer.trims == 2


async def test_an_interval_of_zero_turns_it_off():
    trimmer = MemoryTrimmer(0.0)
    assert not trimmer.available
    await trimmer.run()  # returns at once


async def test_what_was_in_use_at_a_trim_is_released_once_it_is_freed():
    ctypes.CDLL(None).malloc_trim(0)
    trimmer = MemoryTrimmer(1.0, min_growth=16 * MB)
    in_flight = [b"x" * 100_000 for _ in range(400)]  # a burst still held when the trim comes
    pinned = [b"y" * 100_000 for _ in range(40)]  # allocated after it: the heap cannot shrink from its top
    assert await trimmer.check()  # the resident size grew
    assert await trimmer.check()  # it stopped growing: once more, the burst still held
    del in_flight  # the uploads end: their memory is free, and still resident
    before = resident_bytes()
    assert before is not None
    assert await trimmer.check()  # the resident size did not move; malloc's count of free memory did
    after = resident_bytes()
    assert after is not None and after < before - 16 * MB
    assert len(pinned) == 40 and not await trimmer.check()
