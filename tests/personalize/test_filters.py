"""Every Rapport filter, deterministically: the recipient and ``now`` come from the render context."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from rapport.personalize import RenderFailed, TemplateEngine

ENGINE = TemplateEngine()
NBSP = "\xa0"
NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 in London, 30 minutes after the clocks went forward


def render(source: str, *, locale: str = "en_GB", timezone: str = "Europe/London", **values: Any) -> str:
    recipient = {"locale": locale, "timezone": timezone, "currency": values.pop("currency", "GBP")}
    return ENGINE.render(source, {"recipient": recipient, "now": NOW, **values}).text


# -- money --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en_GB", "£1,234.50"),
        ("de_DE", f"1.234,50{NBSP}£"),
        ("fr_FR", f"1\u202f234,50{NBSP}£GB"),  # CLDR's French symbol for sterling
        ("en-US", "£1,234.50"),
    ],
)
def test_money_follows_the_recipient_locale(locale: str, expected: str) -> None:
    assert render("{{ total | money: 'GBP' }}", locale=locale, total=1234.5) == expected


@pytest.mark.parametrize("value", [1234.5, "1234.50", Decimal("1234.5"), 1234.50])
def test_money_accepts_numbers_decimals_and_numeric_strings(value: object) -> None:
    assert render("{{ v | money: 'EUR' }}", v=value) == "€1,234.50"


def test_money_defaults_to_the_recipient_currency() -> None:
    assert render("{{ 5 | money }}", locale="en_US", currency="USD") == "$5.00"
    assert render("{{ 5 | money: 'jpy' }}", locale="ja_JP") == "￥5"


@pytest.mark.parametrize("value", [None, "", "abc", True, [1]])
def test_money_of_a_missing_or_non_numeric_value_is_empty_so_default_applies(value: object) -> None:
    assert render("{{ v | money: 'GBP' | default: 'n/a' }}", v=value) == "n/a"
    assert render("{{ missing | money: 'GBP' }}") == ""


def test_money_with_an_unknown_currency_fails_the_render() -> None:
    with pytest.raises(RenderFailed) as caught:
        render("{{ 5 | money: 'XYZZY' }}")
    assert "unknown currency" in caught.value.message


def test_a_bad_locale_falls_back_to_en_gb() -> None:
    assert render("{{ 1234.5 | money: 'GBP' }}", locale="xx_NOPE") == "£1,234.50"


# -- dates and times ---------------------------------------------------------------------------------
def test_local_date_uses_the_recipient_timezone_and_locale() -> None:
    # 23:30 UTC on the 15th is already the 16th in Berlin
    moment = datetime(2026, 1, 15, 23, 30, tzinfo=UTC)
    assert render("{{ d | local_date }}", d=moment, timezone="UTC") == "15 Jan 2026"
    assert render("{{ d | local_date: 'long' }}", d=moment, locale="de_DE", timezone="Europe/Berlin") == (
        "16. Januar 2026"
    )
    assert render("{{ d | local_date: 'short' }}", d=moment, locale="en_US", timezone="America/New_York") == (
        "1/15/26"
    )
    assert render("{{ d | local_date: 'EEEE d MMMM' }}", d=moment) == "Thursday 15 January"


def test_local_date_accepts_iso_strings_dates_and_epoch_seconds() -> None:
    assert render("{{ d | local_date }}", d="2026-01-15T23:30:00Z", timezone="Asia/Tokyo") == "16 Jan 2026"
    assert render("{{ d | local_date }}", d="2026-01-15", timezone="Pacific/Honolulu") == "15 Jan 2026"
    assert render("{{ d | local_date }}", d=date(2026, 1, 15)) == "15 Jan 2026"
    assert render("{{ d | local_date }}", d=1768521600) == "16 Jan 2026"  # 2026-01-16T00:00Z
    # a naive datetime is taken to be UTC
    assert render("{{ d | local_date }}", d=datetime(2026, 1, 15, 23, 30), timezone="Europe/Berlin") == (
        "16 Jan 2026"
    )


def test_local_time_and_datetime_across_a_dst_change() -> None:
    assert render("{{ now | local_time }}") == "02:30"
    assert render("{{ now | local_time }}", locale="en_US", timezone="America/New_York") == "9:30\u202fPM"
    assert render("{{ now | local_datetime: 'medium' }}") == "29 Mar 2026, 02:30:00"
    assert render("{{ now | local_datetime: 'short' }}", locale="de_DE", timezone="Europe/Berlin") == (
        "29.03.26, 03:30"
    )
    # an hour earlier London was still on GMT
    earlier = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert render("{{ t | local_time }}", t=earlier) == "00:30"


@pytest.mark.parametrize("filter_name", ["local_date", "local_time", "local_datetime"])
@pytest.mark.parametrize("value", [None, "", "not a date", "2026-13-45"])
def test_date_filters_of_missing_or_bad_values_are_empty(filter_name: str, value: object) -> None:
    assert render(f"{{{{ v | {filter_name} | default: '-' }}}}", v=value) == "-"


def test_local_time_of_a_date_without_time_is_empty() -> None:
    assert render("{{ d | local_time }}", d=date(2026, 1, 1)) == ""


def test_an_unknown_timezone_falls_back_to_utc() -> None:
    assert render("{{ now | local_time }}", timezone="Mars/Olympus") == "01:30"


# -- days_until / days_since -------------------------------------------------------------------------
def test_days_until_and_since_count_local_calendar_days() -> None:
    # NOW is the 29th in London and the 28th in New York
    assert render("{{ d | days_until }}", d="2026-04-03") == "5"
    assert render("{{ d | days_until }}", d="2026-04-03", timezone="America/New_York") == "6"
    assert render("{{ d | days_since }}", d="2026-03-01") == "28"
    assert render("{{ d | days_until }}", d="2026-03-20") == "-9"
    assert render("{{ d | days_since }}", d=datetime(2026, 3, 29, 0, 5, tzinfo=UTC)) == "0"
    assert render("{{ d | days_since }}", d=datetime(2026, 3, 28, 23, 55, tzinfo=UTC)) == "1"


def test_days_until_can_drive_conditions() -> None:
    source = "{% assign n = d | days_until %}{% if n <= 7 %}soon{% else %}later{% endif %}"
    assert render(source, d="2026-04-01") == "soon"
    assert render(source, d="2026-05-01") == "later"


def test_days_until_of_a_missing_value_is_empty() -> None:
    assert render("{{ missing | days_until | default: '?' }}") == "?"


# -- default ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({}, "Hi there"),
        ({"first_name": None}, "Hi there"),
        ({"first_name": ""}, "Hi there"),
        ({"first_name": "   "}, "Hi there"),
        ({"first_name": []}, "Hi there"),
        ({"first_name": "Ada"}, "Hi Ada"),
        ({"first_name": 0}, "Hi 0"),
    ],
)
def test_default_covers_missing_and_empty_values(context: dict[str, Any], expected: str) -> None:
    assert render('Hi {{ first_name | default: "there" }}', **context) == expected


def test_default_keeps_false_when_asked() -> None:
    assert render("{{ flag | default: true, allow_false: true }}", flag=False) == "false"
    assert render("{{ flag | default: true }}", flag=False) == "true"


# -- first_name_or / titlecase -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Ada Lovelace", "Ada"),
        ("  ada  ", "Ada"),
        ("ADA", "Ada"),
        ("anne-marie smith", "Anne-Marie"),
        ("McDonald", "McDonald"),
        ("Ada,", "Ada"),
        ("", "there"),
        ("   ", "there"),
        (None, "there"),
        ("ada@example.com", "there"),
        ("12345", "there"),
        ("?!", "there"),
        (42, "there"),
    ],
)
def test_first_name_or(value: object, expected: str) -> None:
    assert render('{{ name | first_name_or: "there" }}', name=value) == expected


def test_first_name_or_of_a_missing_variable_uses_the_fallback() -> None:
    assert render("{{ nobody | first_name_or: 'friend' }}") == "friend"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("the lord of the rings", "The Lord Of The Rings"),
        ("LONDON", "London"),
        ("o'neil's shop", "O'neil's Shop"),
        ("don't stop", "Don't Stop"),
        ("iPhone case", "IPhone Case"),
        ("new york-city", "New York-City"),
        ("3 little pigs", "3 Little Pigs"),
        ("", ""),
    ],
)
def test_titlecase(value: str, expected: str) -> None:
    assert render("{{ v | titlecase }}", v=value) == expected


def test_titlecase_of_missing_is_empty() -> None:
    assert render("{{ missing | titlecase }}") == ""
