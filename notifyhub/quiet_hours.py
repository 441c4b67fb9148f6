"""Quiet hours: a daily window in the recipient's timezone during which nothing is sent."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_clock(hhmm: str) -> time:
    hours, _, minutes = hhmm.partition(":")
    try:
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"not an HH:MM time: {hhmm!r}") from None


def _instant(day: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) the local clock reads ``at`` on ``day``'s date.

    A wall time that occurs twice (clocks fall back) is taken at its first occurrence; one
    that never occurs (clocks spring forward over it) is taken as the moment of the jump.
    """
    wall = datetime.combine(day.date(), at)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: the two folds bracket the transition; find the first whole second whose
    # local time is at or past the wanted wall time (local time only rises across a gap).
    low, high = sorted((wall.replace(tzinfo=zone, fold=1).astimezone(UTC), first))
    low_s, high_s = int(low.timestamp()), int(high.timestamp())
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high_s = middle
        else:
            low_s = middle
    return datetime.fromtimestamp(high_s, UTC)


def quiet_until(now: datetime, start: str, end: str, timezone: str) -> datetime | None:
    """When the quiet window [start, end) that ``now`` falls in ends (UTC), or None.

    Overnight windows (start after end) wrap midnight; start == end means no window.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    begins, ends = parse_clock(start), parse_clock(end)
    if begins == ends:
        return None
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if begins < ends:
        inside = begins <= wall < ends
        end_day = local
    else:
        inside = wall >= begins or wall < ends
        end_day = local + timedelta(days=1) if wall >= begins else local
    if not inside:
        return None
    return _instant(end_day, ends, zone)
