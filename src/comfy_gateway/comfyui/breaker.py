"""A circuit breaker per ComfyUI server: closed -> open -> half-open -> closed.

Fed by health probes and by the outcome of real jobs. While open, no job is sent to the server.
Each time it opens again without having recovered, the wait before the next try doubles (capped).

A probe that answers proves the server is reachable, not that it runs jobs: it closes a half-open
breaker and clears the failures probes counted, but the failures of real jobs stand until a job
succeeds, and only a job's success counts as a full recovery (resetting the backoff). So a server
whose /system_stats answers while every prompt fails still opens, and stays out longer each time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

WINDOW_S = 60.0  # the span the request and error counts of a breaker cover


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


@dataclass(frozen=True)
class BreakerFigures:
    """A breaker at one moment, as the operators' views show it."""

    state: BreakerState
    failures: int  # consecutive, towards opening
    successes: int  # towards closing a half-open breaker
    requests: int  # in the last WINDOW_S seconds
    errors: int
    retry_in_s: float  # while open: until the next try
    reset_timeout_s: float  # the wait the next opening would impose


class RequestWindow:
    """Outcomes of the last WINDOW_S seconds: how many requests a breaker saw, how many failed.

    Counted as they come and go, so reading the figures costs the same however busy the server is."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._errors = 0

    def add(self, ok: bool) -> None:
        self._outcomes.append((self._clock(), ok))
        self._errors += not ok
        self._prune()

    def counts(self) -> tuple[int, int]:
        """(requests, errors) in the window."""
        self._prune()
        return len(self._outcomes), self._errors

    def _prune(self) -> None:
        horizon = self._clock() - WINDOW_S
        while self._outcomes and self._outcomes[0][0] < horizon:
            _, ok = self._outcomes.popleft()
            self._errors -= not ok


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        success_threshold: int = 1,
        base_backoff: float = 2.0,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.success_threshold = success_threshold
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive failures, probes and jobs alike
        self._probe_failures = 0  # the part of `_failures` that probes counted
        self._successes = 0
        self._openings = 0  # consecutive openings without a full recovery
        self._open_until = 0.0
        self.forced = False  # opened by an operator: stays open until closed by one
        self.last_failure: str | None = None
        self.opened_remotely = False  # True only while `trip` announces its change
        self.window = RequestWindow(clock)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and not self.forced and self._clock() >= self._open_until:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    @property
    def retry_in(self) -> float:
        return max(0.0, self._open_until - self._clock()) if self._state is BreakerState.OPEN else 0.0

    def figures(self) -> BreakerFigures:
        requests, errors = self.window.counts()
        return BreakerFigures(state=self.state, failures=self._failures, successes=self._successes,
                              requests=requests, errors=errors, retry_in_s=self.retry_in,
                              reset_timeout_s=self.reset_timeout_s)

    @property
    def reset_timeout_s(self) -> float:
        """The wait the next opening would impose (the backoff grows with each opening)."""
        return float(min(self.max_backoff, self.base_backoff * 2.0 ** self._openings))

    def allows_requests(self) -> bool:
        return self.state is not BreakerState.OPEN

    def record_success(self) -> None:
        """A real job got through: the server works (full recovery)."""
        self.window.add(True)
        if self.forced:
            return
        self._failures = self._probe_failures = 0
        state = self.state
        if state is BreakerState.CLOSED:
            self._openings = 0
        elif state is BreakerState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self.success_threshold:
                self._openings = 0
                self._set(BreakerState.CLOSED)

    def record_probe_success(self) -> None:
        """The health probe answered: reachable again, but job failures and the backoff stand."""
        self.window.add(True)
        if self.forced:
            return
        self._failures -= self._probe_failures
        self._probe_failures = 0
        if self.state is BreakerState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self.success_threshold:
                self._set(BreakerState.CLOSED)

    def record_failure(self, reason: str | None = None, *, probe: bool = False) -> None:
        self.last_failure = reason
        self.window.add(False)
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._open()
        elif state is BreakerState.CLOSED:
            self._failures += 1
            if probe:
                self._probe_failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def trip(self, seconds: float) -> None:
        """Open for `seconds` because another replica found the server failing (no counting here)."""
        if self._state is BreakerState.OPEN or self.forced:
            return
        self.opened_remotely = True
        self._open_until = self._clock() + seconds
        self._failures = self._probe_failures = 0
        self._set(BreakerState.OPEN)
        self.opened_remotely = False

    def force_open(self) -> None:
        self.forced = True
        self._open()

    def force_close(self) -> None:
        self.forced = False
        self._failures = self._probe_failures = 0
        self._openings = 0
        self._set(BreakerState.CLOSED)

    def snapshot(self) -> dict[str, object]:
        return {"state": self.state.value, "consecutive_failures": self._failures,
                "retry_in_seconds": round(self.retry_in, 3), "forced_open": self.forced,
                "last_failure": self.last_failure}

    def _open(self) -> None:
        backoff = self.reset_timeout_s
        self._openings += 1
        self._open_until = self._clock() + backoff
        self._failures = self._probe_failures = 0
        self._set(BreakerState.OPEN)

    def _set(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._successes = 0
        if old is not new and self._on_change is not None:
            self._on_change(old, new)
