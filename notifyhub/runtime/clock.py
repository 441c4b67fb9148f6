"""The pipeline's wall clock, which tests can move forward.

Quiet hours, schedules and frequency windows all ask this clock. In production it is
``time.time()``. With ``NOTIFYHUB_CLOCK_OFFSET_FILE`` set, the number of seconds in that
file is added, so a test can jump a worker hours ahead without waiting.
"""

from __future__ import annotations

import time

from notifyhub.runtime.settings import get_settings

# Re-read the offset file at most this often: a test's change shows within this time.
OFFSET_REFRESH_SECONDS = 0.2

_offset = 0.0
_read_at = float("-inf")


def _current_offset() -> float:
    global _offset, _read_at
    path = get_settings().clock_offset_file
    if path is None:
        return 0.0
    if time.monotonic() - _read_at >= OFFSET_REFRESH_SECONDS:
        try:
            _offset = float(path.read_text().strip() or 0)
        except (OSError, ValueError):
            _offset = 0.0
        _read_at = time.monotonic()
    return _offset


def now() -> float:
    """Seconds since the epoch."""
    return time.time() + _current_offset()
