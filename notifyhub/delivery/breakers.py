"""Circuit breakers: stop calling a provider that keeps failing, probe it now and then.

One breaker per provider and worker process. Every worker learns about an outage on its
own after ``failure_threshold`` failures in a row, which costs a handful of calls per worker
and needs no coordination (a shared breaker would put Redis on every send's path).

    closed ──(threshold temporary failures in a row)──> open
    open ──(reset time passed: one call let through)──> half-open
    half-open ──(the probe succeeds)──> closed;  ──(it fails)──> open again

Only temporary failures count: a permanent refusal is about one message, and shows the
provider is answering.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

from notifyhub.observability.metrics import BREAKER_STATE, BREAKER_TRANSITIONS


class BreakerState(IntEnum):
    """The values of the ``notifyhub_circuit_breaker_state`` gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        provider: str,
        *,
        failure_threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self._threshold = failure_threshold
        self._reset_seconds = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.state = BreakerState.CLOSED
        BREAKER_STATE.labels(provider=provider).set(self.state)

    def allow(self) -> bool:
        """Whether a call may go to the provider now (when open, one probe after the reset time)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and self._clock() >= self._opened_at + self._reset_seconds:
            self._move(BreakerState.HALF_OPEN)
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def seconds_until_probe(self) -> float:
        """How long until ``allow`` may let a call through (0 when it may now)."""
        if self.state is BreakerState.CLOSED:
            return 0.0
        if self.state is BreakerState.HALF_OPEN:
            # A probe is in flight; its answer decides. Look again after the reset time.
            return self._reset_seconds if self._probing else 0.0
        return max(0.0, self._opened_at + self._reset_seconds - self._clock())

    def record_success(self) -> None:
        self._failures = 0
        self._probing = False
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        self._probing = False
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self._failures >= self._threshold
        ):
            self._opened_at = self._clock()
            self._move(BreakerState.OPEN)

    def release_probe(self) -> None:
        """A call ended without an answer (cancelled, or a bug): let another call probe."""
        self._probing = False

    def _move(self, state: BreakerState) -> None:
        self.state = state
        BREAKER_STATE.labels(provider=self.provider).set(state)
        BREAKER_TRANSITIONS.labels(provider=self.provider, state=state.name.lower()).inc()
