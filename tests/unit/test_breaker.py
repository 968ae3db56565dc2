"""The circuit breaker's states, with a clock the test moves."""

from __future__ import annotations

from comfy_gateway.comfyui.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, changes: list | None = None) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, base_backoff=2.0, max_backoff=10.0, clock=clock,
                          on_change=(lambda old, new: changes.append((old.value, new.value))) if changes is not None
                          else None)


def test_opens_after_consecutive_failures_only():
    clock = Clock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()  # resets the count
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allows_requests()


def test_half_open_after_backoff_then_closed_on_success():
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for _ in range(3):
        b.record_failure()
    clock.now += 1.9
    assert b.state is BreakerState.OPEN
    clock.now += 0.2
    assert b.state is BreakerState.HALF_OPEN and b.allows_requests()
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_backoff_grows_while_failing_and_is_capped():
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    waits = []
    for _ in range(5):
        waits.append(round(b.retry_in, 3))
        clock.now += b.retry_in + 0.01
        assert b.state is BreakerState.HALF_OPEN
        b.record_failure()  # the trial fails: open again, longer
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_forced_open_ignores_probes_until_closed_by_hand():
    clock = Clock()
    b = breaker(clock)
    b.force_open()
    clock.now += 1000
    b.record_success()
    assert b.state is BreakerState.OPEN
    b.force_close()
    assert b.state is BreakerState.CLOSED


def test_trip_from_another_replica_opens_for_the_given_time():
    clock = Clock()
    b = breaker(clock)
    b.trip(5.0)
    assert b.state is BreakerState.OPEN and 4.9 < b.retry_in <= 5.0
    clock.now += 5.1
    assert b.state is BreakerState.HALF_OPEN


def test_the_request_window_counts_the_last_minute_only():
    clock = Clock()
    b = breaker(clock)
    b.record_failure("refused")
    b.record_probe_success()
    clock.now += 30
    b.record_success()
    assert (b.figures().requests, b.figures().errors) == (3, 1)
    clock.now += 31  # the first two are older than a minute now
    assert (b.figures().requests, b.figures().errors) == (1, 0)


def test_the_reset_timeout_is_the_wait_the_next_opening_imposes():
    clock = Clock()
    b = breaker(clock)
    assert b.figures().reset_timeout_s == 2.0
    b.force_open()
    assert (b.figures().state, b.figures().reset_timeout_s) == (BreakerState.OPEN, 4.0)
    b.force_close()
    assert b.figures().reset_timeout_s == 2.0
