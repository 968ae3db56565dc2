"""Finished prompts, keyed by prompt_id, in completion order (§7)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_HISTORY = 10_000


class History:
    def __init__(self, limit: int = MAX_HISTORY) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._limit = limit

    def put(self, prompt_id: str, entry: dict[str, Any]) -> None:
        self._entries[prompt_id] = entry
        while len(self._entries) > self._limit:
            del self._entries[next(iter(self._entries))]

    def get(self, prompt_id: str) -> dict[str, Any]:
        """`{prompt_id: entry}`, or `{}` when the prompt has not finished (or never existed)."""
        entry = self._entries.get(prompt_id)
        return {prompt_id: entry} if entry is not None else {}

    def page(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        """The last `max_items` entries by default; with `offset`, entries from that position on."""
        if offset < 0 and max_items is not None:
            offset = len(self._entries) - max_items
        out: dict[str, Any] = {}
        for index, (prompt_id, entry) in enumerate(self._entries.items()):
            if index < offset:
                continue
            if max_items is not None and len(out) >= max_items:
                break
            out[prompt_id] = entry
        return out

    def delete(self, prompt_ids: Iterable[str]) -> None:
        for prompt_id in prompt_ids:
            self._entries.pop(str(prompt_id), None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
