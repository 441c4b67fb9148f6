"""The circuit breaker's state machine, on a clock the test moves."""

from __future__ import annotations

from notifyhub.delivery.breakers import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("test-provider", failure_threshold=3, reset_seconds=10, clock=clock)


def test_consecutive_failures_open_the_breaker() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    assert b.state is BreakerState.CLOSED
    assert b.allow()
    b.record_failure()
    # mypy keeps b.state narrowed to CLOSED across record_failure(), which changes it.
    assert b.state is BreakerState.OPEN  # type: ignore[comparison-overlap]
    assert not b.allow()
    assert b.seconds_until_probe() == 10


def test_a_success_resets_the_count_of_failures() -> None:
    b = breaker(FakeClock())
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED


def test_after_the_reset_time_one_probe_goes_through_and_its_success_closes() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now += 10
    assert b.allow()
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow(), "only one probe at a time"
    b.record_success()
    # mypy keeps b.state narrowed to HALF_OPEN across record_success(), which changes it.
    assert b.state is BreakerState.CLOSED  # type: ignore[comparison-overlap]
    assert b.allow()


def test_a_failed_probe_opens_the_breaker_again_for_a_full_reset_time() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now += 11
    assert b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    clock.now += 9
    assert not b.allow()
    clock.now += 1
    assert b.allow()


def test_a_probe_that_ends_without_an_answer_frees_the_slot() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now += 10
    assert b.allow()
    b.release_probe()
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()
