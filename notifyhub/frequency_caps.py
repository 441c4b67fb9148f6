"""Frequency caps: at most N notifications per recipient and channel in a sliding window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from notifyhub.channels import Channel
from notifyhub.messages import ChannelPreference

# NotifyHub's worker limits per recipient and channel per hour, our defaults.
DEFAULT_CAPS: Mapping[Channel, tuple[int, int]] = MappingProxyType(
    {Channel.EMAIL: (10, 60), Channel.PUSH: (5, 60), Channel.SMS: (3, 60), Channel.INAPP: (50, 60)}
)


@dataclass(frozen=True)
class CapDecision:
    allowed: bool
    sent_in_window: int
    cap: int
    window_minutes: int
    history: tuple[float, ...]


def check_cap(history: Sequence[float], now: float, cap: int, window_minutes: int) -> CapDecision:
    """Admit one more send at ``now`` if fewer than ``cap`` fall in the window (now-window, now].

    Only the newest ``cap`` timestamps are kept: the decision needs to know whether ``cap``
    sends fall in the window, and older ones can only leave it first.
    """
    start = now - window_minutes * 60
    recent = sorted(t for t in history if t > start)[-cap:]
    allowed = len(recent) < cap
    kept = ([*recent, now] if allowed else recent)[-cap:]
    return CapDecision(allowed, len(recent), cap, window_minutes, tuple(kept))


def cap_for(channel: Channel, preference: ChannelPreference) -> tuple[int, int]:
    """The preference's cap and window when it sets a cap, else the channel's default."""
    if preference.frequency_cap is not None:
        return preference.frequency_cap, preference.frequency_window_minutes
    return DEFAULT_CAPS[channel]


def reason(decision: CapDecision, channel: Channel) -> str:
    return (
        f"frequency cap reached: {decision.cap} {channel} notifications per "
        f"{decision.window_minutes} min"
    )
