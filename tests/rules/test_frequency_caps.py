"""Frequency caps: the sliding-window decision, the stored history, and which cap applies."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifyhub.model.channels import Channel
from notifyhub.model.messages import ChannelPreference
from notifyhub.rules.frequency_caps import (
    DEFAULT_CAPS,
    CapDecision,
    Counted,
    admit,
    cap_for,
    check_cap,
    reason,
)

NOW = 1_000_000.0
HOUR = 3600.0


def test_under_the_cap_it_is_allowed_and_now_is_recorded() -> None:
    decision = check_cap([NOW - 100, NOW - 50], NOW, cap=3, window_minutes=60)
    assert decision == CapDecision(
        allowed=True,
        sent_in_window=2,
        cap=3,
        window_minutes=60,
        history=(NOW - 100, NOW - 50, NOW),
    )


def test_empty_history_is_allowed() -> None:
    decision = check_cap([], NOW, cap=1, window_minutes=60)
    assert (decision.allowed, decision.sent_in_window, decision.history) == (True, 0, (NOW,))


def test_at_the_cap_it_is_refused_and_now_is_not_recorded() -> None:
    decision = check_cap([NOW - 30, NOW - 20, NOW - 10], NOW, cap=3, window_minutes=60)
    assert not decision.allowed
    assert decision.sent_in_window == 3
    assert decision.history == (NOW - 30, NOW - 20, NOW - 10)


def test_entries_older_than_the_window_are_pruned_so_it_is_allowed_again() -> None:
    history = [NOW - 2 * HOUR, NOW - HOUR - 1, NOW - 10]
    decision = check_cap(history, NOW, cap=2, window_minutes=60)
    assert decision.allowed
    assert decision.sent_in_window == 1
    assert decision.history == (NOW - 10, NOW)


def test_an_entry_exactly_one_window_old_no_longer_counts() -> None:
    assert check_cap([NOW - HOUR], NOW, cap=1, window_minutes=60).allowed
    assert not check_cap([NOW - HOUR + 0.5], NOW, cap=1, window_minutes=60).allowed


def test_unsorted_input_with_duplicates_counts_every_send_and_stores_them_sorted() -> None:
    refused = check_cap([NOW - 10, NOW - 30, NOW - 10], NOW, cap=3, window_minutes=60)
    assert (refused.allowed, refused.sent_in_window) == (False, 3)
    assert refused.history == (NOW - 30, NOW - 10, NOW - 10)

    allowed = check_cap([NOW - 10, NOW - 30, NOW - 10], NOW, cap=4, window_minutes=60)
    assert allowed.allowed
    assert allowed.history == (NOW - 30, NOW - 10, NOW - 10, NOW)


def test_a_timestamp_after_now_counts_and_history_stays_sorted() -> None:
    decision = check_cap([NOW + 5], NOW, cap=2, window_minutes=60)
    assert decision.sent_in_window == 1
    assert decision.history == (NOW, NOW + 5)


def test_stored_history_never_exceeds_the_cap() -> None:
    # Ten recent sends from when the cap was higher: only the newest three are kept.
    history = [NOW - seconds for seconds in range(10, 0, -1)]
    decision = check_cap(history, NOW, cap=3, window_minutes=60)
    assert (decision.allowed, decision.sent_in_window) == (False, 10)
    assert decision.history == (NOW - 3, NOW - 2, NOW - 1)


def test_keeping_only_cap_entries_decides_like_keeping_them_all() -> None:
    cap, window_minutes = 3, 10
    full: list[float] = []
    stored: tuple[float, ...] = ()
    # Attempts every 100 s with bursts, so the window fills, drains and refills.
    attempts = [NOW + step * 100 + burst for step in range(40) for burst in (0, 1, 2)]
    for at in attempts:
        in_window = [sent for sent in full if sent > at - window_minutes * 60]
        expected = len(in_window) < cap
        decision = check_cap(stored, at, cap, window_minutes)
        assert decision.allowed == expected
        assert len(decision.history) <= cap
        stored = decision.history
        if expected:
            full.append(at)


@pytest.mark.parametrize(("cap", "window_minutes"), [(0, 60), (-1, 60), (3, 0)])
def test_a_cap_or_window_below_one_is_refused(cap: int, window_minutes: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        check_cap([], NOW, cap, window_minutes)


def test_default_caps_are_per_hour_for_every_channel() -> None:
    assert dict(DEFAULT_CAPS) == {
        Channel.EMAIL: (10, 60),
        Channel.PUSH: (5, 60),
        Channel.SMS: (3, 60),
        Channel.INAPP: (50, 60),
    }


@pytest.mark.parametrize("channel", list(Channel))
def test_cap_for_uses_the_channel_default_without_a_preference_cap(channel: Channel) -> None:
    assert cap_for(channel, ChannelPreference()) == DEFAULT_CAPS[channel]


def test_cap_for_ignores_a_preference_window_without_a_cap() -> None:
    assert cap_for(Channel.SMS, ChannelPreference(frequency_window_minutes=15)) == (3, 60)


def test_cap_for_uses_the_preference_cap_with_its_own_window() -> None:
    preference = ChannelPreference(frequency_cap=2, frequency_window_minutes=15)
    assert cap_for(Channel.EMAIL, preference) == (2, 15)


def test_cap_for_a_preference_cap_uses_the_preference_default_window() -> None:
    assert cap_for(Channel.PUSH, ChannelPreference(frequency_cap=7)) == (7, 60)


def test_reason_names_the_cap_the_channel_and_the_window() -> None:
    decision = check_cap([NOW - 1] * 10, NOW, cap=10, window_minutes=60)
    assert reason(decision, Channel.EMAIL) == "frequency cap reached: 10 email notifications per 60 min"


# ---------------------------------------------------------------- the stored form


def _admitted(counts: dict[str, Any], at: float, notification: uuid.UUID, cap: int = 3) -> bool:
    preference = ChannelPreference(frequency_cap=cap, frequency_window_minutes=60)
    return admit(counts, Channel.SMS, preference, at, notification).allowed


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=18_000), min_size=1, max_size=40),
    cap=st.integers(min_value=1, max_value=6),
)
def test_admit_decides_like_check_cap_on_the_stored_form(gaps: list[int], cap: int) -> None:
    """Stored times are tenths of a second: sends a whole number of tenths apart, and no
    send within a tenth of the window's edge, get exactly check_cap's decision."""
    counts: dict[str, Any] = {}
    history: list[float] = []
    now = NOW
    for gap in gaps:
        now += gap / 10
        expected = check_cap(history, now, cap, 60)
        at_the_edge = any(abs(at - (now - HOUR)) < 0.1 for at in history)
        admitted = _admitted(counts, now, uuid.uuid4(), cap)
        if at_the_edge:
            return
        assert admitted == expected.allowed
        history = list(expected.history)
    stored = Counted.load(counts.get("sms"))
    assert stored.times() == pytest.approx(history[-len(stored.ticks) :], abs=0.051)


def test_a_notification_counted_before_passes_without_being_counted_again() -> None:
    counts: dict[str, Any] = {}
    first, second = uuid.uuid4(), uuid.uuid4()
    assert _admitted(counts, NOW, first, cap=1)
    assert _admitted(counts, NOW + 1, first, cap=1)
    assert not _admitted(counts, NOW + 2, second, cap=1)


def test_the_stored_form_of_a_full_in_app_cap_stays_small() -> None:
    counts: dict[str, Any] = {}
    for n in range(60):
        admit(counts, Channel.INAPP, ChannelPreference(), NOW + n, uuid.uuid4())
    assert len(counts["inapp"]) < 600
    assert len(Counted.load(counts["inapp"]).ticks) == DEFAULT_CAPS[Channel.INAPP][0]


def test_counts_stored_by_earlier_versions_still_count() -> None:
    old = uuid.uuid4()
    counts = {"sms": [[NOW - 20, str(old)], NOW - 10, [NOW - 5, None]]}
    assert Counted.load(counts["sms"]).times() == pytest.approx([NOW - 20, NOW - 10, NOW - 5], abs=0.051)
    assert _admitted(counts, NOW, old, cap=3)  # counted before, by id
    assert not _admitted(counts, NOW, uuid.uuid4(), cap=3)


def test_a_send_timed_before_the_stored_ones_is_counted_in_order() -> None:
    counts: dict[str, Any] = {}
    assert _admitted(counts, NOW, uuid.uuid4())
    assert _admitted(counts, NOW - 30, uuid.uuid4())  # another worker's clock behind
    assert Counted.load(counts["sms"]).times() == pytest.approx([NOW - 30, NOW], abs=0.051)
