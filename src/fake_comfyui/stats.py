"""Counters a fake server keeps about what it was asked to do."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Outcome(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass
class Stats:
    prompts: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    peak_queue_depth: int = 0
    sockets_seen: int = 0
    model_loads: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))

    def record_prompt(self, prompt_id: str, number: float, client_id: str | None, arrived_at: float) -> None:
        self.prompts.append(
            {"prompt_id": prompt_id, "number": number, "client_id": client_id, "arrived_at": arrived_at}
        )

    def record_rejected(self) -> None:
        self.rejected += 1

    def observe_depth(self, depth: int) -> None:
        self.peak_queue_depth = max(self.peak_queue_depth, depth)

    def socket_opened(self) -> None:
        self.sockets_seen += 1

    def record_model_load(self) -> None:
        self.model_loads += 1

    def record_outcome(self, outcome: Outcome) -> None:
        self.outcomes[outcome] += 1

    def reset(self, current_depth: int) -> None:
        self.prompts.clear()
        self.rejected = 0
        self.peak_queue_depth = current_depth
        self.sockets_seen = 0
        self.model_loads = 0
        self.outcomes = dict.fromkeys(Outcome, 0)

    def snapshot(self, *, queue_depth: int, sockets_open: int, name: str | None) -> dict[str, Any]:
        """The dict `FakeComfyUI.stats()` and `GET /fake/stats` return."""
        return {
            "name": name,
            "prompts": [dict(p) for p in self.prompts],
            "prompts_received": len(self.prompts),
            "prompts_rejected": self.rejected,
            "peak_queue_depth": self.peak_queue_depth,
            "queue_depth": queue_depth,
            "sockets_seen": self.sockets_seen,
            "sockets_open": sockets_open,
            "model_loads": self.model_loads,
            **{outcome.value: count for outcome, count in self.outcomes.items()},
        }
