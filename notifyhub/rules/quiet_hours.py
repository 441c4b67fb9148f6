"""Quiet hours: a daily window in the recipient's timezone during which nothing is sent.

A window is written as two wall-clock times, ``start`` and ``end`` ("HH:MM"), and is
half-open: a message at ``start`` waits, one at ``end`` goes. Each day's window is turned
into two instants with the recipient's timezone rules, and ``now`` is quiet when it lies
between them. On DST days a wall time is turned into an instant like this:

- a time that never occurs (clocks spring forward over it) is the moment of the jump,
  the first instant after the gap: 02:30 on a 02:00 -> 03:00 day is 03:00;
- a time that occurs twice (clocks fall back) is its first occurrence (fold=0).

So a window never opens twice and never ends in the past: once its end has passed, a
wall clock that reads the window's hour again after a fall-back is not quiet again.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from notifyhub.model.messages import HHMM_PATTERN


def parse_clock(hhmm: str) -> time:
    """The wall-clock time of an "HH:MM" string (00:00 to 23:59); ValueError for anything else."""
    if not isinstance(hhmm, str) or re.fullmatch(HHMM_PATTERN, hhmm) is None:
        raise ValueError(f"not an HH:MM time between 00:00 and 23:59: {hhmm!r}")
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the local clock in ``zone`` reads ``at`` on ``day``.

    A wall time that occurs twice is taken at its first occurrence; one that never occurs
    is taken as the moment the clocks jump over it.
    """
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap the two folds map to instants on either side of the jump; zoneinfo cannot say
    # when it is, so bisect on whole seconds (tz transitions fall on whole seconds) for the
    # first instant whose local time is at or past the wanted one: across the gap local time
    # only rises, so that instant is the jump.
    low_s = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    high_s = int(first.timestamp())
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high_s = middle
        else:
            low_s = middle
    return datetime.fromtimestamp(high_s, UTC)


def quiet_until(now: datetime, start: str, end: str, timezone: str) -> datetime | None:
    """When the quiet window that ``now`` falls in ends (aware, UTC), or None when not quiet.

    ``now`` may be in any timezone but must be aware (ValueError otherwise); ``start`` and
    ``end`` are "HH:MM" wall times in the IANA ``timezone``. The window is [start, end); a
    window with start after end (22:00-07:00) runs overnight and ends the next day. Start
    equal to end means no quiet hours at all rather than a whole day of silence: a
    recipient who wants nothing on a channel turns the channel off instead. Raises
    ``zoneinfo.ZoneInfoNotFoundError`` for an unknown timezone.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    begins, ends = parse_clock(start), parse_clock(end)
    if begins == ends:
        return None
    zone = ZoneInfo(timezone)
    # Compared in UTC: == between zones is always False for a time in a repeated hour (PEP 495).
    now = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    overnight = begins > ends
    # The window that may hold now opened today, or yesterday for one that runs overnight:
    # a window opening tomorrow starts after every instant of today, even on DST days.
    for opened in (today - timedelta(days=1), today):
        closes = opened + timedelta(days=1) if overnight else opened
        window_start, window_end = _instant(opened, begins, zone), _instant(closes, ends, zone)
        if window_start <= now < window_end:
            return window_end
    return None
