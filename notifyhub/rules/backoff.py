"""When to try a temporarily failed send again: exponential backoff with jitter."""

from __future__ import annotations

import random

# The delay is drawn from [half, all] of the exponential step ("equal jitter"): spread out
# enough that workers retrying after one outage do not return in lockstep, while an
# attempt never comes back much earlier than its backoff promises.
JITTER_SHARE = 0.5


def retry_delay(
    attempt: int, base_seconds: float, max_seconds: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
    # typeshed makes int ** int Any (a negative exponent gives a float): say what it is.
    step: float = min(max_seconds, base_seconds * 2 ** (attempt - 1))
    draw = rng.random() if rng is not None else random.random()
    return step * (1 - JITTER_SHARE + JITTER_SHARE * draw)
