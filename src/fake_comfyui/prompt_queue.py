"""The prompt queue: a heap ordered by `number`, one running item at a time (§3, §10)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueueItem:
    """One accepted prompt. `prompt` is the graph as submitted; `outputs` the valid output nodes."""

    number: float
    prompt_id: str
    prompt: Mapping[str, Any]
    extra_data: Mapping[str, Any]
    outputs: list[str]
    arrived_at: float

    @property
    def client_id(self) -> str | None:
        value = self.extra_data.get("client_id")
        return str(value) if value is not None else None

    def as_wire(self) -> list[Any]:
        """`[number, prompt_id, prompt, extra_data, outputs_to_execute]` as in /queue and history."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, list(self.outputs)]


@dataclass(order=True)
class _Entry:
    number: float
    sequence: int
    item: QueueItem = field(compare=False)


class PromptQueue:
    """Pending heap + the running item. Waiting for work is event-driven, pausing blocks dequeueing."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._running: QueueItem | None = None
        self._sequence = itertools.count()
        self._counter = 0
        self._paused = False
        self._changed = asyncio.Event()

    # -- numbering -------------------------------------------------------------------------------

    def allocate_number(self, body: Mapping[str, Any]) -> float:
        """ComfyUI's rule: explicit `number` wins; otherwise the counter (negated with `front`)."""
        if "number" in body:
            return float(body["number"])
        number = self._counter
        self._counter += 1
        return -number if body.get("front") else number

    # -- state -----------------------------------------------------------------------------------

    @property
    def running(self) -> QueueItem | None:
        return self._running

    @property
    def paused(self) -> bool:
        return self._paused

    def pending(self) -> list[QueueItem]:
        """Pending items in raw heap order (not execution order), as ComfyUI lists them."""
        return [entry.item for entry in self._heap]

    def depth(self) -> int:
        """`queue_remaining`: pending plus running."""
        return len(self._heap) + (1 if self._running is not None else 0)

    def contains(self, prompt_id: str) -> bool:
        return any(entry.item.prompt_id == prompt_id for entry in self._heap)

    # -- changes ---------------------------------------------------------------------------------

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self._heap, _Entry(item.number, next(self._sequence), item))
        self._changed.set()

    def delete(self, prompt_ids: Iterable[str]) -> int:
        """Remove matching pending items (the running one is untouched); returns how many."""
        doomed = set(prompt_ids)
        kept = [entry for entry in self._heap if entry.item.prompt_id not in doomed]
        removed = len(self._heap) - len(kept)
        if removed:
            self._heap = kept
            heapq.heapify(self._heap)
        return removed

    def clear(self) -> int:
        removed = len(self._heap)
        self._heap = []
        return removed

    def drop_all(self) -> None:
        """Forget pending and running items (a server going away)."""
        self._heap = []
        self._running = None

    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._changed.set()

    async def start_next(self) -> QueueItem:
        """Wait until an item may start, make it the running one and return it."""
        while self._paused or not self._heap:
            self._changed.clear()
            await self._changed.wait()
        item = heapq.heappop(self._heap).item
        self._running = item
        return item

    def finish(self, item: QueueItem) -> None:
        if self._running is item:
            self._running = None
