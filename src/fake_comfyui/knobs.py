"""Fault and timing knobs that tests and benchmarks turn at run time."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .lies import Lies

DEFAULT_FAILURE_MESSAGE = "Injected failure"


class Fault(enum.Enum):
    """What happens to a prompt when it starts, decided once at dequeue time."""

    NONE = "none"
    FAIL = "fail"
    HANG = "hang"


@dataclass
class Knobs:
    """Mutable settings of one fake server.

    service_time  extra seconds each prompt takes, spread over its nodes (and progress ticks)
    model_load_time  seconds a prompt takes first when it uses other models than the previous one
    view_delay    seconds every GET /view waits before answering
    fail_next     prompts still to fail (execution_error on their first non-loader node)
    hang_next     prompts still to hang (never finish unless interrupted)
    lies          what the server says falsely about chosen prompts (lies.py)
    """

    service_time: float = 0.0
    model_load_time: float = 0.0
    view_delay: float = 0.0
    fail_remaining: int = 0
    fail_message: str = DEFAULT_FAILURE_MESSAGE
    hang_remaining: int = 0
    lies: Lies = field(default_factory=Lies)

    def set_service_time(self, seconds: float) -> None:
        self.service_time = max(0.0, float(seconds))

    def set_model_load_time(self, seconds: float) -> None:
        self.model_load_time = max(0.0, float(seconds))

    def set_view_delay(self, seconds: float) -> None:
        self.view_delay = max(0.0, float(seconds))

    def fail_next(self, n: int = 1, message: str = DEFAULT_FAILURE_MESSAGE) -> None:
        self.fail_remaining = max(0, int(n))
        self.fail_message = message

    def hang_next(self, n: int = 1) -> None:
        self.hang_remaining = max(0, int(n))

    def take_fault(self) -> Fault:
        """Consume one pending fault (failures first) for a prompt that starts now."""
        if self.fail_remaining > 0:
            self.fail_remaining -= 1
            return Fault.FAIL
        if self.hang_remaining > 0:
            self.hang_remaining -= 1
            return Fault.HANG
        return Fault.NONE
