"""The pipeline's wall clock: the one source of "now" for quiet hours, schedules, frequency
windows, digests and escalations.

It is ``time.time()`` unless the process that runs the pipeline is given another clock
(``use``) before it starts. The test suite runs workers whose clock it moves forward, so a
test can jump a worker hours ahead without waiting; production code never knows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]

_source: Clock = time.time


def use(source: Clock) -> None:
    """Make ``source`` (seconds since the epoch, when called) this process's clock."""
    global _source
    _source = source


def now() -> float:
    """Seconds since the epoch."""
    return _source()
