"""Quiet hours: which instants are quiet, and when the window ends, DST days included.

DST dates used (2025): Europe/Paris springs forward 30 March 02:00 -> 03:00 (01:00 UTC) and
falls back 26 October 03:00 -> 02:00 (01:00 UTC); America/New_York springs forward 9 March
02:00 -> 03:00 (07:00 UTC) and falls back 2 November 02:00 -> 01:00 (06:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifyhub.rules.quiet_hours import parse_clock, quiet_until

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("07:05", time(7, 5)), ("00:00", time(0, 0)), ("23:59", time(23, 59))],
)
def test_parse_clock_reads_hh_mm(text: str, expected: time) -> None:
    assert parse_clock(text) == expected


@pytest.mark.parametrize(
    "text", ["24:00", "07:60", "7:05", "0705", " 07:05", "07:05\n", "07:05:00", "", "\u0660\u0667:05"]
)
def test_parse_clock_refuses_anything_but_hh_mm(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM"):
        parse_clock(text)


def test_inside_a_same_day_window_it_ends_the_same_day() -> None:
    assert quiet_until(utc(2025, 1, 15, 12, 0), "09:00", "17:00", "UTC") == utc(2025, 1, 15, 17, 0)


@pytest.mark.parametrize("now", [utc(2025, 1, 15, 8, 59), utc(2025, 1, 15, 18, 0)])
def test_outside_a_same_day_window_it_is_not_quiet(now: datetime) -> None:
    assert quiet_until(now, "09:00", "17:00", "UTC") is None


def test_exactly_at_start_is_quiet() -> None:
    assert quiet_until(utc(2025, 1, 15, 9, 0), "09:00", "17:00", "UTC") == utc(2025, 1, 15, 17, 0)


def test_exactly_at_end_is_not_quiet() -> None:
    assert quiet_until(utc(2025, 1, 15, 17, 0), "09:00", "17:00", "UTC") is None


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        # 07:00 in Paris in winter (UTC+1) on the 16th, whichever side of midnight now is.
        pytest.param(datetime(2025, 1, 15, 23, 30), utc(2025, 1, 16, 6, 0), id="before-midnight"),
        pytest.param(datetime(2025, 1, 16, 2, 0), utc(2025, 1, 16, 6, 0), id="after-midnight"),
        # 07:00 CEST (UTC+2), not CET: the night clocks spring forward is an hour shorter.
        pytest.param(datetime(2025, 3, 29, 23, 0), utc(2025, 3, 30, 5, 0), id="across-spring-forward"),
        # 07:00 CET (UTC+1), not CEST: the night clocks fall back is an hour longer.
        pytest.param(datetime(2025, 10, 25, 23, 0), utc(2025, 10, 26, 6, 0), id="across-fall-back"),
    ],
)
def test_overnight_window_ends_at_the_next_local_morning(local: datetime, expected: datetime) -> None:
    assert quiet_until(local.replace(tzinfo=PARIS), "22:00", "07:00", "Europe/Paris") == expected


@pytest.mark.parametrize("local", [datetime(2025, 1, 16, 7, 0), datetime(2025, 1, 15, 21, 59)])
def test_outside_an_overnight_window_it_is_not_quiet(local: datetime) -> None:
    assert quiet_until(local.replace(tzinfo=PARIS), "22:00", "07:00", "Europe/Paris") is None


def test_now_in_another_timezone_is_read_in_the_recipients() -> None:
    # 12:30 on the 16th in Tokyo is 22:30 on the 15th in New York: inside 22:00-07:00 there.
    now = datetime(2025, 1, 16, 12, 30, tzinfo=ZoneInfo("Asia/Tokyo"))
    until = quiet_until(now, "22:00", "07:00", "America/New_York")
    assert until == utc(2025, 1, 16, 12, 0)  # 07:00 EST on the 16th
    assert until is not None and until.tzinfo is UTC


def test_end_inside_the_spring_forward_gap_is_the_jump() -> None:
    # 02:30 does not exist in Paris on 30 March: the window ends when clocks jump to 03:00.
    now = datetime(2025, 3, 30, 1, 30, tzinfo=PARIS)
    until = quiet_until(now, "00:00", "02:30", "Europe/Paris")
    assert until == utc(2025, 3, 30, 1, 0)
    assert until is not None and until.astimezone(PARIS).time() == time(3, 0)


def test_after_the_spring_forward_gap_a_window_ending_in_it_is_over() -> None:
    now = datetime(2025, 3, 30, 3, 10, tzinfo=PARIS)
    assert quiet_until(now, "00:00", "02:30", "Europe/Paris") is None


def test_start_inside_the_spring_forward_gap_opens_at_the_jump() -> None:
    before_jump = datetime(2025, 3, 30, 1, 59, tzinfo=PARIS)
    at_jump = datetime(2025, 3, 30, 3, 0, tzinfo=PARIS)
    assert quiet_until(before_jump, "02:15", "04:00", "Europe/Paris") is None
    assert quiet_until(at_jump, "02:15", "04:00", "Europe/Paris") == utc(2025, 3, 30, 2, 0)


def test_end_at_an_ambiguous_time_is_its_first_occurrence() -> None:
    # 01:30 happens twice in New York on 2 November: first EDT (05:30 UTC), then EST (06:30 UTC).
    now = datetime(2025, 11, 2, 0, 45, tzinfo=NEW_YORK)
    assert quiet_until(now, "00:00", "01:30", "America/New_York") == utc(2025, 11, 2, 5, 30)


def test_after_its_ambiguous_end_a_window_does_not_reopen_when_clocks_fall_back() -> None:
    # 01:15 EST, the second 01:15: the window already ended at the first 01:30.
    now = datetime(2025, 11, 2, 1, 15, fold=1, tzinfo=NEW_YORK)
    assert now.astimezone(UTC) == utc(2025, 11, 2, 6, 15)
    assert quiet_until(now, "00:00", "01:30", "America/New_York") is None


def test_a_window_opened_at_an_ambiguous_start_holds_through_the_repeated_hour() -> None:
    # The window opened at the first 01:15 (05:15 UTC); the second 01:10 comes after that.
    now = datetime(2025, 11, 2, 1, 10, fold=1, tzinfo=NEW_YORK)
    assert quiet_until(now, "01:15", "03:00", "America/New_York") == utc(2025, 11, 2, 8, 0)


def test_overnight_window_ending_in_the_gap_ends_at_the_jump_next_morning() -> None:
    now = datetime(2025, 3, 8, 23, 0, tzinfo=NEW_YORK)
    # 02:30 does not exist in New York on 9 March: clocks jump from 02:00 EST to 03:00 EDT.
    assert quiet_until(now, "22:00", "02:30", "America/New_York") == utc(2025, 3, 9, 7, 0)


@pytest.mark.parametrize("now", [utc(2025, 1, 15, 8, 0), utc(2025, 1, 15, 12, 0)])
def test_start_equal_to_end_means_no_quiet_hours(now: datetime) -> None:
    assert quiet_until(now, "08:00", "08:00", "UTC") is None


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        quiet_until(datetime(2025, 1, 15, 12, 0), "09:00", "17:00", "UTC")


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    start=st.times().map(lambda at: at.strftime("%H:%M")),
    end=st.times().map(lambda at: at.strftime("%H:%M")),
    zone=st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "UTC"]),
)
def test_the_window_always_ends_after_now_and_within_a_day(
    now: datetime, start: str, end: str, zone: str
) -> None:
    until = quiet_until(now, start, end, zone)
    # A day of wall-clock time, plus at most an hour of DST shift.
    assert until is None or now < until <= now + timedelta(hours=25)
