"""Slot accounting: MAX_CONCURRENT_JOBS overall and MAX_JOBS_PER_INSTANCE per server.

`acquire` picks the least-loaded server among the candidates that has a free slot, and takes the
slot in the same step, so the limits can never be over-committed. `LocalSlots` serves one process;
the Redis ledger does the same with one Lua script for several replicas.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol


class SlotLedger(Protocol):
    async def acquire(self, candidates: Sequence[str]) -> str | None: ...

    async def release(self, instance: str) -> None: ...

    async def adopt(self, previous_owner: str | None, instance: str) -> None:
        """Take over the slot a dead worker held for a prompt that is still on `instance`.

        The prompt is there whatever the limits say, so the slot is counted, never refused."""

    async def usage(self) -> dict[str, int]:
        """Slots in use per instance (every instance with at least one)."""


class LocalSlots:
    def __init__(self, per_instance: int, total: int) -> None:
        self.per_instance = per_instance
        self.total = total
        self._used: dict[str, int] = {}
        self._turn = itertools.count()

    async def acquire(self, candidates: Sequence[str]) -> str | None:
        if sum(self._used.values()) >= self.total:
            return None
        free = [c for c in candidates if self._used.get(c, 0) < self.per_instance]
        if not free:
            return None
        # Least loaded first; among equals, take turns so work spreads over idle servers.
        low = min(self._used.get(c, 0) for c in free)
        tied = [c for c in free if self._used.get(c, 0) == low]
        chosen = tied[next(self._turn) % len(tied)]
        self._used[chosen] = self._used.get(chosen, 0) + 1
        return chosen

    async def adopt(self, previous_owner: str | None, instance: str) -> None:
        self._used[instance] = self._used.get(instance, 0) + 1

    async def release(self, instance: str) -> None:
        left = self._used.get(instance, 0) - 1
        if left > 0:
            self._used[instance] = left
        else:
            self._used.pop(instance, None)

    async def usage(self) -> dict[str, int]:
        return dict(self._used)
