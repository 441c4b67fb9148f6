"""A worker whose clock a test moves forward: ``python -m tests.support.moved_clock worker``.

The test writes the seconds to add to the wall clock into the file named by
``TEST_CLOCK_OFFSET_FILE`` (``MovedClock.advance``), so a worker can be jumped hours ahead
(quiet hours, schedules, frequency windows) without waiting. The clock is given to the
worker as any process would give it one (``notifyhub.runtime.clock.use``), before the
command starts: the production code has no test hook.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# The environment variable naming the offset file, for workers started this way.
OFFSET_FILE_VARIABLE = "TEST_CLOCK_OFFSET_FILE"
# Re-read the offset file at most this often: a test's change shows within this time.
OFFSET_REFRESH_SECONDS = 0.2


class OffsetFileClock:
    """``time.time()`` plus the number of seconds in a file, re-read now and then."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0.0
        self._read_at = float("-inf")

    def __call__(self) -> float:
        if time.monotonic() - self._read_at >= OFFSET_REFRESH_SECONDS:
            try:
                self._offset = float(self._path.read_text().strip() or 0)
            except (OSError, ValueError):
                self._offset = 0.0
            self._read_at = time.monotonic()
        return time.time() + self._offset


class MovedClock:
    """The test's side: where the worker's clock stands, and moving it forward."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        path.write_text("0")

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta.total_seconds()
        self.path.write_text(str(self.offset))

    def worker_settings(self) -> dict[str, str]:
        """What ``worker_factory`` needs to start a worker on this clock."""
        return {OFFSET_FILE_VARIABLE: str(self.path)}


def main() -> int:
    from notifyhub.cli.main import main as notifyhub
    from notifyhub.runtime import clock

    clock.use(OffsetFileClock(Path(os.environ[OFFSET_FILE_VARIABLE])))
    return notifyhub(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
