"""Giving back to the system the memory malloc keeps after a burst of large buffers.

glibc's malloc returns freed memory to the system only from the top of its heap: after a burst
of uploads (a few MB each, several at a time) the holes they leave stay resident, and the
process keeps its high-water mark for good. `malloc_trim(0)` releases the free pages wherever
they are. It takes a few milliseconds and a released page costs a fault when it is used again,
so `MemoryTrimmer` calls it only once the resident size has grown by `min_growth` bytes since
the last trim, once more when the growth stops after such a trim, and whenever malloc holds
`min_growth` bytes more free than at its lowest since the last trim (`mallinfo2`): a trim in the
middle of a burst cannot give back what the uploads then in flight held, and when they end the
resident size does not move, so only malloc's own count shows it. Without glibc (or /proc) it
does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from collections.abc import Callable

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _find_malloc_trim() -> Callable[[int], int] | None:
    with contextlib.suppress(OSError, AttributeError):
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the C library the process runs on
        return trim
    return None


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _find_free_held() -> Callable[[], int | None]:
    """What tells the bytes malloc holds free in its arenas (glibc 2.33 and later); None without it."""
    with contextlib.suppress(OSError, AttributeError):
        mallinfo2 = ctypes.CDLL(None).mallinfo2
        mallinfo2.restype = _MallInfo2
        return lambda: int(mallinfo2().fordblks)
    return lambda: None


def resident_bytes() -> int | None:
    """This process's resident set size, or None where /proc does not tell it."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


SETTLE_NOISE = 1024 * 1024  # what the resident size may move between two checks and still count as settled


class MemoryTrimmer:
    def __init__(self, interval_s: float, min_growth: int = 16 * 1024 * 1024) -> None:
        self.interval_s = interval_s
        self.min_growth = min_growth
        self.trims = 0
        self._trim = _find_malloc_trim()
        self._floor = resident_bytes()  # the resident size after the last trim (or the lowest since)
        self._last = self._floor  # the resident size at the last check
        self._settle = False  # trimmed while RSS grew: trim again once it stops growing
        self._free_held = _find_free_held()
        self._least_free = self._free_held()  # the least malloc held free since the last trim

    @property
    def available(self) -> bool:
        return self._trim is not None and self._floor is not None and self.interval_s > 0

    async def run(self) -> None:
        while self.available:
            await asyncio.sleep(self.interval_s)
            await self.check()

    async def check(self) -> bool:
        """Trim if the resident size grew by `min_growth` since the last trim; True if it did."""
        rss = resident_bytes()
        if self._trim is None or rss is None or self._floor is None:
            return False
        grew = rss >= self._floor + self.min_growth
        settled = self._settle and rss <= (self._last or rss) + SETTLE_NOISE  # a few pages are not growth
        freed = self._freed_since_trim()
        self._last = rss
        if not (grew or settled or freed):
            self._floor = min(self._floor, rss)
            return False
        await asyncio.to_thread(self._trim, 0)  # malloc's locks, not the GIL: the loop goes on
        self.trims += 1
        self._settle = grew
        self._floor = self._last = resident_bytes() or rss
        self._least_free = self._free_held()
        return True

    def _freed_since_trim(self) -> bool:
        """Whether `min_growth` bytes were freed since the last trim (freed from use: resident)."""
        free = self._free_held()
        if free is None or self._least_free is None:
            return False
        self._least_free = min(self._least_free, free)
        return free >= self._least_free + self.min_growth
