"""Frequency caps: at most N notifications per recipient and channel in a sliding window.

The decision is pure: it takes the timestamps (seconds since the epoch) of the sends
admitted before and returns whether one more is admitted now, with the history to store
in its place. ``admit`` makes the same decision on the compact form
``notifyhub.tables.frequency_caps`` keeps per recipient and channel (``Counted``).
"""

from __future__ import annotations

import base64
import struct
import uuid
from array import array
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from notifyhub.model.channels import Channel
from notifyhub.model.messages import ChannelPreference

SECONDS_PER_MINUTE = 60

# The defaults are per hour: a recipient who set no cap of their own gets at most this many
# of each channel in any 60 minutes. SMS is the tightest (it costs money and interrupts),
# in-app the loosest (it waits silently in an inbox).
DEFAULT_WINDOW_MINUTES = 60
DEFAULT_CAPS: Mapping[Channel, tuple[int, int]] = MappingProxyType(
    {
        Channel.EMAIL: (10, DEFAULT_WINDOW_MINUTES),
        Channel.PUSH: (5, DEFAULT_WINDOW_MINUTES),
        Channel.SMS: (3, DEFAULT_WINDOW_MINUTES),
        Channel.INAPP: (50, DEFAULT_WINDOW_MINUTES),
    }
)


@dataclass(frozen=True)
class CapDecision:
    """Whether one more send is admitted, and the history to store for the next decision."""

    allowed: bool
    # Sends admitted within the window before this one.
    sent_in_window: int
    cap: int
    window_minutes: int
    # The pruned, sorted timestamps (epoch seconds) to store, including now when allowed.
    history: tuple[float, ...]


def check_cap(history: Sequence[float], now: float, cap: int, window_minutes: int) -> CapDecision:
    """Admit one more send at ``now`` if fewer than ``cap`` sends fall in the window.

    The window is (now - window, now]: a send exactly ``window_minutes`` ago no longer
    counts. ``history`` may be unsorted; equal timestamps are separate sends. Raises
    ValueError when ``cap`` or ``window_minutes`` is below 1.

    The stored history keeps only the newest ``cap`` timestamps: the window holds ``cap``
    sends exactly when the ``cap``-th newest is still in it, and sends leave the window
    oldest first, so older timestamps can never change a later decision with the same cap.
    That bounds what is stored per recipient and channel by the cap, not by the traffic.
    """
    if cap < 1 or window_minutes < 1:
        raise ValueError(f"cap and window_minutes must be at least 1, got {cap} and {window_minutes}")
    window_opens = now - window_minutes * SECONDS_PER_MINUTE
    # Timestamps after now (another worker's clock slightly ahead) are sends too: keep them.
    in_window = sorted(sent for sent in history if sent > window_opens)
    allowed = len(in_window) < cap
    kept = sorted([*in_window, now]) if allowed else in_window[-cap:]
    return CapDecision(
        allowed=allowed,
        sent_in_window=len(in_window),
        cap=cap,
        window_minutes=window_minutes,
        history=tuple(kept),
    )


def cap_for(channel: Channel, preference: ChannelPreference) -> tuple[int, int]:
    """The (cap, window minutes) that apply to a recipient's channel.

    The preference's ``frequency_cap`` and ``frequency_window_minutes`` when it sets a cap;
    otherwise the channel's default cap with the default window (the preference's window
    alone says nothing, since it always has a value).
    """
    if preference.frequency_cap is not None:
        return preference.frequency_cap, preference.frequency_window_minutes
    return DEFAULT_CAPS[channel]


def reason(decision: CapDecision, channel: Channel) -> str:
    """Why a send was refused, for the delivery event: which cap, on which channel."""
    return (
        f"frequency cap reached: {decision.cap} {channel} notifications per "
        f"{decision.window_minutes} min"
    )


# A recipient's counted sends on one channel, stored compactly: a base time (float64
# seconds), then each send's time in tenths of a second after the base and a 32-bit tag of
# its notification id, base64 in the table's JSON. 8 bytes a send: the largest default cap
# (in-app, 50) stays under 600 characters, where [time, id] lists took about 3 KB; and a
# decision is a binary search in C arrays, not a pass over Python lists.
_HEADER = struct.Struct("<dH")
TICKS_PER_SECOND = 10
# Ticks are unsigned 32-bit: past 13 years after the base, the base moves up.
MAX_TICKS = 2**32 - 1


def id_tag(notification_id: uuid.UUID) -> int:
    """A notification's 32-bit tag: two notifications of one recipient sharing one within
    a cap's window (one chance in 4 billion) would be counted once."""
    return int.from_bytes(notification_id.bytes[:4], "little")


class Counted:
    """One recipient's counted sends on one channel, oldest first."""

    __slots__ = ("base", "tags", "ticks")

    def __init__(self, base: float = 0.0) -> None:
        self.base = base
        self.ticks = array("I")  # tenths of a second after ``base``
        self.tags = array("I")

    @classmethod
    def load(cls, stored: object) -> Counted:
        """From the table: packed, or the lists of earlier versions (``[time, id]`` pairs, or
        bare times; a bare time counts without a tag)."""
        if isinstance(stored, str) and stored:
            raw = base64.b64decode(stored)
            base, count = _HEADER.unpack_from(raw)
            counted = cls(base)
            middle = _HEADER.size + 4 * count
            counted.ticks.frombytes(raw[_HEADER.size : middle])
            counted.tags.frombytes(raw[middle : middle + 4 * count])
            return counted
        counted = cls()
        if isinstance(stored, list):
            for entry in sorted(stored, key=lambda e: e if isinstance(e, int | float) else e[0]):
                if isinstance(entry, int | float):
                    counted.add(float(entry), 0)
                else:
                    counted.add(float(entry[0]), id_tag(uuid.UUID(entry[1])) if entry[1] else 0)
        return counted

    def dump(self) -> str:
        header = _HEADER.pack(self.base, len(self.ticks))
        return base64.b64encode(header + self.ticks.tobytes() + self.tags.tobytes()).decode()

    def times(self) -> list[float]:
        return [self.base + tick / TICKS_PER_SECOND for tick in self.ticks]

    def after(self, moment: float) -> int:
        """How many were counted after ``moment``."""
        return len(self.ticks) - bisect_right(self.ticks, (moment - self.base) * TICKS_PER_SECOND)

    def drop_until(self, moment: float) -> None:
        """Forget those counted at or before ``moment``."""
        gone = bisect_right(self.ticks, (moment - self.base) * TICKS_PER_SECOND)
        del self.ticks[:gone]
        del self.tags[:gone]

    def add(self, at: float, tag: int) -> None:
        if not self.ticks or at < self.base or (at - self.base) * TICKS_PER_SECOND >= MAX_TICKS:
            # Empty, earlier than the base (another worker's clock behind), or too far after
            # it for a tick: count from the oldest time again.
            self._rebase(min(at, self.base) if self.ticks else at)
        self._insert(at, tag)

    def _rebase(self, base: float) -> None:
        kept = list(zip(self.times(), self.tags, strict=True))
        self.base, self.ticks, self.tags = base, array("I"), array("I")
        for at, tag in kept:
            self._insert(at, tag)

    def _insert(self, at: float, tag: int) -> None:
        tick = round((at - self.base) * TICKS_PER_SECOND)
        index = bisect_right(self.ticks, tick)
        self.ticks.insert(index, tick)
        self.tags.insert(index, tag)

    def keep_last(self, count: int) -> None:
        extra = len(self.ticks) - count
        if extra > 0:
            del self.ticks[:extra]
            del self.tags[:extra]


def admit(
    counts: dict[str, Any],
    channel: Channel,
    preference: ChannelPreference,
    now: float,
    notification_id: uuid.UUID,
) -> CapDecision:
    """Count one send against the recipient's cap for the channel in ``counts`` (the
    recipient's stored counts by channel, updated in place), unless the cap is reached.
    The same decision as ``check_cap``, on the stored form.

    A notification counted before (a record read again: Kafka is at-least-once) passes
    without being counted twice. The decision's ``history`` is left empty.
    """
    cap, window_minutes = cap_for(channel, preference)
    counted = Counted.load(counts.get(channel.value))
    tag = id_tag(notification_id)
    if tag in counted.tags:
        return CapDecision(True, len(counted.ticks), cap, window_minutes, ())
    window_opens = now - window_minutes * SECONDS_PER_MINUTE
    in_window = counted.after(window_opens)
    if in_window >= cap:
        return CapDecision(False, in_window, cap, window_minutes, ())
    counted.drop_until(window_opens)
    counted.add(now, tag)
    counted.keep_last(cap)
    counts[channel.value] = counted.dump()
    return CapDecision(True, in_window, cap, window_minutes, ())
