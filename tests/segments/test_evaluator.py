"""The plain-Python evaluator on hand-made profiles, with exact expectations for every construct."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rapport.segments import (
    Catalog,
    EventFact,
    MessageFact,
    ProfileFacts,
    SegmentError,
    bucket,
    evaluate,
    parse,
)
from rapport.segments.ast import DateRelative
from rapport.segments.evaluator import calendar_date, date_relative, distance_km

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LEEDS = (53.7997, -1.5492)
CATALOG = Catalog(stores={"Leeds Briggate": (53.7966, -1.5424), "York Coppergate": (53.9576, -1.0803)})


def _ann(**changes: object) -> ProfileFacts:
    facts: dict[str, Any] = {
        "profile_id": "ann",
        "traits": {
            "city": "Leeds",
            "age": 34,
            "total_spend": 250.0,
            "is_vip": True,
            "tags": ["vip", "newsletter"],
            "signup_date": "2024-12-01",
            "contract_end": "2026-02-10",
            "birthday": "1990-01-15",
            "last_seen": datetime(2026, 1, 14, 23, 30, tzinfo=UTC),
            "rfm_segment": "champions",
            "churn_danger": 0.2,
            "propensity.purchase_30d": 0.81,
            "nickname": None,
        },
        "events": (
            EventFact("order_completed", NOW - 10 * DAY, {"amount": 60, "store": "Leeds"}),
            EventFact("order_completed", NOW - 40 * DAY, {"amount": 120, "store": "York"}),
            EventFact("order_completed", NOW - 90 * DAY + timedelta(hours=1), {"amount": 30}),
            EventFact("order_completed", NOW - 100 * DAY, {"amount": 500, "store": "Leeds"}),
            EventFact("page_viewed", NOW - 2 * DAY, {"url": "/sale/shoes", "product": {"category": "shoes"}}),
            EventFact("page_viewed", NOW - 8 * DAY, {"url": "/sale/hats"}),
            EventFact("page_viewed", NOW - timedelta(hours=1), {"url": "/home"}),
        ),
        "messages": (
            MessageFact("email", "opened", NOW - 5 * DAY, "Spring sale"),
            MessageFact("email", "opened", NOW - 31 * DAY),
            MessageFact("email", "clicked", NOW - 5 * DAY, "Spring sale"),
            MessageFact("sms", "delivered", NOW - DAY),
            MessageFact("push", "bounced", NOW - 3 * DAY),
        ),
        "subscriptions": {
            ("email", None): "subscribed",
            ("sms", None): "unsubscribed",
            ("email", "offers"): "subscribed",
            ("email", "news"): "unsubscribed",
            ("push", None): "never_asked",
        },
        "segments": frozenset({"VIP"}),
        "location": LEEDS,
        "timezone": "Europe/London",
    }
    facts.update(changes)
    return ProfileFacts(**facts)


REFERENCE = (
    "purchased at least 3 times in last 90 days and total_spend > 200 and email.opened in last 30 days and "
    'city in ("Leeds", "York") and not in segment "Staff"'
)

CASES = [
    (REFERENCE, True),
    # traits
    ('city = "Leeds"', True),
    ('city = "leeds"', False),
    ('city != "York"', True),
    ("age >= 34 and age < 35", True),
    ("total_spend > 250", False),
    ("total_spend >= 250", True),
    ("total_spend = 250", True),
    ("is_vip = true", True),
    ("is_vip != true", False),
    ('city contains "ee"', True),
    ('city starts with "Le"', True),
    ('city starts with "ee"', False),
    ('rfm_segment in ("champions", "loyal")', True),
    ('rfm_segment not in ("champions", "loyal")', False),
    ("churn_danger < 0.5 and propensity.purchase_30d > 0.8", True),
    ('tags contains "vip"', True),
    ('tags contains "vi"', False),
    ('tags in ("vip", "x")', True),
    ('tags not in ("x", "y")', True),
    ('tags not in ("newsletter")', False),
    # missing values and type mismatches are false; not makes them true
    ('nickname = "x"', False),
    ('nickname != "x"', False),
    ('not nickname = "x"', True),
    ('nickname not in ("x")', False),
    ("nickname is set", False),
    ("nickname is not set", True),
    ("unknown_trait is not set", True),
    ("city is set", True),
    ('age = "34"', False),
    ('age != "34"', False),
    ("is_vip = 1", False),
    ("city > 3", False),
    # calendar dates (timestamps by UTC date)
    ("signup_date = 2024-12-01", True),
    ("signup_date > 2024-11-30 and signup_date < 2024-12-02", True),
    ("last_seen = 2026-01-14", True),
    ("last_seen > 2026-01-14", False),
    ("signup_date in (2024-12-01, 2025-01-01)", True),
    ("city = 2024-12-01", False),
    # date-relative, in the profile's timezone (London: today is 2026-01-15)
    ("contract_end in next 30 days", True),
    ("contract_end in next 26 days", True),
    ("contract_end in next 25 days", False),
    ("contract_end in last 30 days", False),
    ("last_seen in last 1 day", True),
    ("last_seen in last 0 days", False),
    ("signup_date more than 365 days ago", True),
    ("signup_date more than 410 days ago", False),
    ("signup_date less than 411 days ago", True),
    ("birthday is today", False),
    ("birthday anniversary is today", True),
    ("contract_end anniversary in next 26 days", True),
    ("city is today", False),
    ("nickname anniversary is today", False),
    # events: counts and windows
    ("purchased at least 3 times in last 90 days", True),
    ("purchased at least 4 times in last 90 days", False),
    ("purchased exactly 4 times", True),
    ("purchased at most 3 times in last 90 days", True),
    ("purchased at most 0 times in last 5 days", True),
    ('did "order_completed" in last 241 hours', True),
    ('did "order_completed" in last 239 hours', False),
    ('did "order_completed" between 2025-12-06 and 2025-12-06', True),
    ('did "order_completed" between 2025-12-07 and 2026-01-04', False),
    ('did not "order_completed" in last 7 days', True),
    ('did not "order_completed" in last 11 days', False),
    ('did "never_happens"', False),
    ('did "never_happens" at most 0 times', True),
    # events: where clauses on properties (nested with dots)
    ('did "page_viewed" where url contains "/sale" in last 7 days', True),
    ('did "page_viewed" where url contains "/sale" at least 2 times in last 7 days', False),
    ('did "page_viewed" where url contains "/sale" at least 2 times in last 9 days', True),
    ('did "page_viewed" where product.category = "shoes"', True),
    ('did "page_viewed" where product.colour is set', False),
    ('purchased where (amount > 50 and store = "Leeds") at least 2 times', True),
    ('purchased where (amount > 50 and store = "Leeds") at least 2 times in last 90 days', False),
    ("purchased where store is not set", True),
    ('purchased where (not store = "Leeds") exactly 2 times', True),
    ('purchased where (store = "York" or amount < 40) exactly 2 times', True),
    # first / last time
    ("first purchased before 2025-10-08", True),
    ("first purchased before 2025-10-07", False),
    ("first purchased after 2025-10-06", True),
    ("first purchased after 2025-10-07", False),
    ("last purchased more than 30 days ago", False),
    ("last purchased less than 30 days ago", True),
    ("last purchased more than 9 days ago", True),
    ('last did "page_viewed" after 2026-01-14', True),
    ('first did "app_installed" before 2030-01-01', False),
    ('not first did "app_installed" before 2030-01-01', True),
    ('first did "page_viewed" where url = "/home" less than 1 day ago', True),
    # message engagement
    ("email.opened in last 30 days", True),
    ("email.opened at least 2 times in last 30 days", False),
    ("email.opened at least 2 times", True),
    ('email.clicked campaign "Spring sale"', True),
    ('email.clicked campaign "Winter"', False),
    ("message.bounced", True),
    ("sms.bounced", False),
    ("message.delivered in last 2 days", True),
    ("email.unsubscribed", False),
    ("email.unsubscribed at most 0 times", True),
    # channel subscriptions
    ("subscribed to email", True),
    ("subscribed to sms", False),
    ("unsubscribed from sms", True),
    ("subscribed to push", False),
    ("unsubscribed from push", False),
    ('subscribed to email topic "offers"', True),
    ('subscribed to email topic "news"', False),
    ('unsubscribed from email topic "news"', True),
    ('unsubscribed from sms topic "offers"', True),
    ('subscribed to email topic "service"', False),
    ("subscribed to webhook", False),
    # membership, location, buckets
    ('in segment "VIP"', True),
    ('in segment "Staff"', False),
    ('within 1 km of store "Leeds Briggate"', True),
    ('within 0.3 km of store "Leeds Briggate"', False),
    ('within 30 km of store "York Coppergate"', False),
    ('within 40 km of store "York Coppergate"', True),
    ("within 0.1 km of (53.7997, -1.5492)", True),
    ("random bucket < 100%", True),
    ("random bucket < 0%", False),
    ("random bucket >= 0%", True),
    # structure
    ('city = "York" or age = 34', True),
    ('city = "York" or age = 35', False),
    ('not (city = "York" or age = 35)', True),
    ('city = "Leeds" and not (age = 34 and is_vip = true)', False),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_each_condition_on_a_hand_made_profile(text: str, expected: bool) -> None:
    assert evaluate(parse(text), _ann(), NOW, catalog=CATALOG) is expected


def test_the_reference_segment_excludes_staff_and_light_buyers() -> None:
    segment = parse(REFERENCE)
    assert evaluate(segment, _ann(segments={"VIP", "Staff"}), NOW) is False
    assert evaluate(segment, _ann(events=_ann().events[1:]), NOW) is False
    assert evaluate(segment, _ann(), NOW + timedelta(hours=2)) is False  # the 89-day-23-hour order ages out


def test_an_event_exactly_at_the_window_edge_is_outside_and_one_now_is_inside() -> None:
    segment = parse('did "x" in last 1 day')
    assert evaluate(segment, _ann(events=[EventFact("x", NOW - DAY)]), NOW) is False
    assert (
        evaluate(segment, _ann(events=[EventFact("x", NOW - DAY + timedelta(microseconds=1))]), NOW) is True
    )
    assert evaluate(segment, _ann(events=[EventFact("x", NOW)]), NOW) is True
    assert evaluate(segment, _ann(events=[EventFact("x", NOW + timedelta(seconds=1))]), NOW) is False


def test_between_covers_whole_utc_days_at_both_ends() -> None:
    segment = parse('did "x" between 2025-12-01 and 2025-12-31')
    inside = [datetime(2025, 12, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)]
    outside = [datetime(2025, 11, 30, 23, 59, 59, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]
    for moment in inside:
        assert evaluate(segment, _ann(events=[EventFact("x", moment)]), NOW) is True
    for moment in outside:
        assert evaluate(segment, _ann(events=[EventFact("x", moment)]), NOW) is False


def test_today_is_the_profiles_local_date() -> None:
    # 12:00 UTC on 15 January is already 01:00 on 16 January in Auckland (UTC+13).
    born_16th = {"birthday": "2000-01-16"}
    segment = parse("birthday anniversary is today")
    assert evaluate(segment, _ann(traits=born_16th, timezone="Pacific/Auckland"), NOW) is True
    assert evaluate(segment, _ann(traits=born_16th, timezone="Europe/London"), NOW) is False
    # at 03:00 UTC on the 15th it is still the 14th in Los Angeles
    early = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
    due_14th = {"contract_end": "2026-01-14"}
    assert evaluate(
        parse("contract_end is today"), _ann(traits=due_14th, timezone="America/Los_Angeles"), early
    )
    assert not evaluate(
        parse("contract_end is today"), _ann(traits=due_14th, timezone="Europe/London"), early
    )
    # an unknown or missing timezone is UTC
    assert (
        evaluate(parse("contract_end is today"), _ann(traits=due_14th, timezone="Mars/Olympus"), NOW) is False
    )
    assert evaluate(parse("contract_end in last 1 day"), _ann(traits=due_14th, timezone=None), NOW) is True


def test_a_29_february_anniversary_falls_on_28_february_in_other_years() -> None:
    leap = date(2000, 2, 29)
    assert date_relative(leap, "today", 0, True, date(2026, 2, 28)) is True
    assert date_relative(leap, "today", 0, True, date(2028, 2, 28)) is False
    assert date_relative(leap, "today", 0, True, date(2028, 2, 29)) is True
    assert date_relative(date(1990, 12, 30), "in next", 3, True, date(2026, 12, 29)) is True
    assert date_relative(date(1990, 1, 1), "in next", 3, True, date(2026, 12, 30)) is True  # over new year
    assert date_relative(date(1990, 1, 1), "in last", 2, True, date(2026, 1, 3)) is True
    assert date_relative(date(1990, 1, 1), "in last", 1, True, date(2026, 1, 3)) is False


def test_date_relative_boundaries_are_inclusive_of_today_and_the_nth_day() -> None:
    today = date(2026, 1, 15)
    assert date_relative(today + 30 * DAY, "in next", 30, False, today)
    assert not date_relative(today + 31 * DAY, "in next", 30, False, today)
    assert date_relative(today, "in next", 0, False, today)
    assert not date_relative(today - DAY, "in next", 30, False, today)
    assert date_relative(today - 7 * DAY, "in last", 7, False, today)
    assert not date_relative(today + DAY, "in last", 7, False, today)
    assert not date_relative(today - 365 * DAY, "more than ago", 365, False, today)
    assert date_relative(today - 366 * DAY, "more than ago", 365, False, today)
    assert not date_relative(today - 365 * DAY, "less than ago", 365, False, today)
    assert date_relative(today - 364 * DAY, "less than ago", 365, False, today)
    assert not date_relative(today + DAY, "less than ago", 365, False, today)
    assert DateRelative("d", "today").days == 0


def test_calendar_dates_of_trait_values() -> None:
    assert calendar_date("2025-03-04") == date(2025, 3, 4)
    assert calendar_date("2025-03-04T23:30:00-02:00") == date(2025, 3, 5)
    assert calendar_date("2025-03-04T23:30:00") == date(2025, 3, 4)
    assert calendar_date(datetime(2025, 3, 4, 23, 30, tzinfo=UTC)) == date(2025, 3, 4)
    assert calendar_date("not a date") is None
    assert calendar_date(20250304) is None


def test_the_bucket_is_the_documented_hash_stable_and_about_uniform() -> None:
    digest = hashlib.sha256(b"spring:ann").digest()
    assert bucket("spring", "ann") == int.from_bytes(digest[:4], "big") * 100 / 2**32
    assert bucket("spring", "ann") == bucket("spring", "ann")
    ids = [f"p{i}" for i in range(20_000)]
    under_ten = [i for i in ids if bucket("seed-a", i) < 10]
    assert 1800 <= len(under_ten) <= 2200
    assert under_ten != [i for i in ids if bucket("seed-b", i) < 10]
    assert all(0 <= bucket("s", i) < 100 for i in ids[:1000])


def test_bucket_conditions_use_their_own_seed_or_the_segments() -> None:
    profile = _ann()
    value = bucket("", "ann")
    assert evaluate(parse(f"random bucket < {value + 0.001}%"), profile, NOW) is True
    assert evaluate(parse(f"random bucket < {value}%"), profile, NOW) is False
    assert evaluate(parse(f"random bucket <= {value}%"), profile, NOW) is True
    seeded = bucket("segment-7", "ann")
    assert evaluate(parse(f"random bucket >= {seeded}%"), profile, NOW, seed="segment-7") is True
    assert evaluate(parse(f"random bucket < {seeded}%"), profile, NOW, seed="segment-7") is False
    own = bucket("mine", "ann")
    segment = parse(f'random bucket >= {own}% seed "mine"')
    assert evaluate(segment, profile, NOW, seed="ignored") is True


def test_haversine_distance_matches_a_known_figure() -> None:
    assert distance_km((51.5074, -0.1278), (48.8566, 2.3522)) == pytest.approx(343.6, abs=0.5)  # London-Paris
    assert distance_km(LEEDS, LEEDS) == 0


def test_location_and_store_edge_cases() -> None:
    assert evaluate(parse("within 5000 km of (0, 0)"), _ann(location=None), NOW) is False
    with pytest.raises(SegmentError, match="unknown store 'Nowhere'"):
        evaluate(parse('within 1 km of store "Nowhere"'), _ann(), NOW, catalog=CATALOG)


def test_an_opt_out_topic_without_its_own_state_counts_as_subscribed_if_the_channel_is() -> None:
    catalog = Catalog(opt_out_topics={"service"})
    assert evaluate(parse('subscribed to email topic "service"'), _ann(), NOW, catalog=catalog) is True
    assert evaluate(parse('subscribed to sms topic "service"'), _ann(), NOW, catalog=catalog) is False


def test_a_topic_row_for_every_channel_holds_where_the_channel_has_none() -> None:
    # the consent domain stores a topic answered once for all channels with channel ""
    person = ProfileFacts(
        "p",
        subscriptions={("email", None): "subscribed", ("sms", None): "subscribed", ("", "news"): "unsubscribed",
                       ("sms", "news"): "subscribed"},
    )  # fmt: skip
    assert evaluate(parse('unsubscribed from email topic "news"'), person, NOW) is True
    assert evaluate(parse('subscribed to email topic "news"'), person, NOW) is False
    assert evaluate(parse('subscribed to sms topic "news"'), person, NOW) is True  # its own row wins


def test_now_must_be_aware() -> None:
    with pytest.raises(SegmentError, match="aware"):
        evaluate(parse("city is set"), _ann(), datetime(2026, 1, 15))


def test_numbers_from_a_database_compare_as_numbers() -> None:
    profile = _ann(traits={"total_spend": Decimal("250.00"), "age": 34.0})
    assert evaluate(parse("total_spend >= 250 and total_spend < 250.01"), profile, NOW) is True
    assert evaluate(parse("age = 34 and age in (33, 34)"), profile, NOW) is True


def test_extreme_dates_and_naive_timestamps_do_not_break_evaluation() -> None:
    naive = [EventFact("x", datetime(9999, 12, 31, 23, 0)), EventFact("x", datetime(2026, 1, 15, 11, 0))]
    profile = _ann(events=naive)
    assert evaluate(parse('did "x" between 9999-12-31 and 9999-12-31'), profile, NOW) is True
    assert evaluate(parse('did "x" in last 2 hours'), profile, NOW) is True
    assert evaluate(parse('last did "x" after 9999-12-30'), profile, NOW) is True
    assert evaluate(parse('first did "x" before 0001-01-01'), profile, NOW) is False
    far = _ann(traits={"d": "0001-01-01", "e": "9999-12-31"})
    assert evaluate(parse("d more than 36500 days ago and not e in next 36500 days"), far, NOW) is True


def test_in_and_not_in_are_chains_of_equals_and_not_equals() -> None:
    profile = _ann(traits={"age": 34, "tags": ["vip", 3]})
    assert evaluate(parse('age not in ("x")'), profile, NOW) is False  # like age != "x": other type
    assert evaluate(parse("age not in (1, 2)"), profile, NOW) is True
    assert evaluate(parse('age in ("34", 34)'), profile, NOW) is True
    assert evaluate(parse('tags not in ("x", 4)'), profile, NOW) is True  # list: shares no element
    assert evaluate(parse("tags in (3)"), profile, NOW) is True
