"""Frequency caps: at most N notifications per recipient and channel in a sliding window.

The decision is pure: it takes the timestamps (seconds since the epoch) of the sends
admitted before and returns whether one more is admitted now, with the history to store
in its place (``notifyhub.tables.caps`` keeps that history per recipient and channel).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from notifyhub.channels import Channel
from notifyhub.messages import ChannelPreference

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
