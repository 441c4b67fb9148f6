"""Retry delays: exponential, capped, jittered within [half, all] of the step."""

from __future__ import annotations

import random

import pytest

from notifyhub.rules.backoff import retry_delay


@pytest.mark.parametrize(("attempt", "step"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (20, 60.0)])
def test_the_delay_doubles_per_attempt_up_to_the_cap(attempt: int, step: float) -> None:
    rng = random.Random(7)
    delays = [retry_delay(attempt, 1.0, 60.0, rng) for _ in range(500)]
    assert min(delays) >= step / 2
    assert max(delays) <= step
    # Jitter spreads the delays: workers retrying after one outage do not return together.
    assert max(delays) - min(delays) > step / 4
