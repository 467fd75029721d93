"""R14: quiet hours in the recipient's local time; deferred, never dropped; DST-safe; strictest zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.messaging.caps import caps_from_settings, period_key
from rapport.messaging.quiet_hours import Window, allowed_at, next_allowed, window_for, zones

SMS = Window.parse("08:00", "21:00")
LONDON = ZoneInfo("Europe/London")
ZONES = [
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Asia/Tokyo",
    "America/Sao_Paulo",
    "Europe/Berlin",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Pacific/Chatham",
]


def test_inside_the_window_goes_now() -> None:
    noon = datetime(2026, 7, 1, 11, tzinfo=UTC)  # 12:00 in London (BST)
    assert next_allowed(noon, SMS, [LONDON]) == noon


def test_late_evening_is_deferred_to_eight_next_morning() -> None:
    late = datetime(2026, 7, 1, 21, 30, tzinfo=UTC)  # 22:30 BST
    assert next_allowed(late, SMS, [LONDON]) == datetime(2026, 7, 2, 7, tzinfo=UTC)  # 08:00 BST


def test_across_the_autumn_dst_change() -> None:
    # Saturday 24 Oct 2026 22:00 BST; clocks go back on Sunday 25 Oct at 02:00 BST.
    late = datetime(2026, 10, 24, 21, tzinfo=UTC)
    assert next_allowed(late, SMS, [LONDON]) == datetime(2026, 10, 25, 8, tzinfo=UTC)  # 08:00 GMT


def test_across_the_spring_dst_change() -> None:
    late = datetime(2026, 3, 28, 22, tzinfo=UTC)  # 22:00 GMT, BST starts 29 Mar 01:00 UTC
    assert next_allowed(late, SMS, [LONDON]) == datetime(2026, 3, 29, 7, tzinfo=UTC)  # 08:00 BST


def test_uncertain_zone_uses_the_strictest_reading() -> None:
    east, west = ZoneInfo("America/New_York"), ZoneInfo("America/Los_Angeles")
    # 09:00 in New York is 06:00 in Los Angeles: not yet allowed for a number that could be either.
    moment = datetime(2026, 6, 10, 13, tzinfo=UTC)
    deferred = next_allowed(moment, SMS, [east, west])
    assert deferred == datetime(2026, 6, 10, 15, tzinfo=UTC)  # 08:00 in Los Angeles, 11:00 in New York
    assert allowed_at(deferred, SMS, [east, west])


def test_windows_wrapping_midnight_and_channel_settings() -> None:
    night = Window.parse("22:00", "06:00")
    assert night.allows(time(23, 0)) and night.allows(time(5, 59)) and not night.allows(time(6, 0))
    assert window_for("sms", None) == SMS
    assert window_for("email", None) is None
    assert window_for("email", {"quiet_hours": {"email": ["09:00", "20:00"]}}) == Window.parse(
        "09:00", "20:00"
    )
    assert window_for("sms", {"quiet_hours": {"sms": None}}) is None
    with pytest.raises(ValueError):
        window_for("sms", {"quiet_hours": {"sms": "all day"}})


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    names=st.lists(st.sampled_from(ZONES), min_size=1, max_size=3, unique=True),
    start=st.integers(0, 23),
    length=st.integers(1, 23),
)
def test_property_never_dropped_never_early_never_later_than_needed(
    moment: datetime, names: list[str], start: int, length: int
) -> None:
    window = Window(time(start), time((start + length) % 24))
    candidate = zones(names)
    when = next_allowed(moment, window, candidate)
    assert when >= moment  # never earlier than due
    assert when - moment <= timedelta(days=3)  # never dropped: always a time within three days
    if allowed_at(moment, window, candidate):
        assert when == moment
    elif any(allowed_at(when, window, [z]) for z in candidate) and allowed_at(when, window, candidate):
        # Nothing between the due time and the chosen time was allowed everywhere (checked per minute).
        probe = moment + timedelta(minutes=1)
        while probe < when - timedelta(minutes=1):
            assert not allowed_at(probe, window, candidate), (probe, when)
            probe += timedelta(minutes=7)


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    name=st.sampled_from(ZONES),
)
def test_property_single_zone_result_is_inside_the_window(moment: datetime, name: str) -> None:
    when = next_allowed(moment, SMS, [ZoneInfo(name)])
    assert SMS.allows(when.astimezone(ZoneInfo(name)).time())


def test_cap_periods_follow_the_local_calendar() -> None:
    late = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    assert period_key("day", late, LONDON) == "d2026-11-23"
    assert period_key("day", late, ZoneInfo("Asia/Tokyo")) == "d2026-11-24"
    assert period_key("week", late, LONDON) == "w2026-48"
    assert caps_from_settings({"caps": {"email": {"day": 1, "week": 3}}})[1].limit == 3
    with pytest.raises(ValueError):
        caps_from_settings({"caps": {"email": {"month": 1}}})
