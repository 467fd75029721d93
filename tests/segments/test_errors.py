"""Parse and catalogue errors: where they point, what they expect, what they suggest, how the API shows them."""

from __future__ import annotations

import pytest

from rapport.errors import ValidationFailed
from rapport.segments import Catalog, FieldInfo, SegmentError, check, parse
from rapport.segments.ast import Compare, Did, InSegment

CATALOG = Catalog(
    traits={"city": "string", "age": "number", "is_vip": "boolean", "signup_date": "date", "tags": "list"},
    computed={"total_spend": "number", "contract_end": "date"},
    scores={"churn_danger": "number", "rfm_segment": "string", "propensity.purchase_30d": "number"},
    events={"order_completed", "page_viewed"},
    stores={"Leeds Briggate": (53.7966, -1.5424)},
    segments={"Staff", "VIP"},
    topics={"offers", "news"},
    campaigns={"Spring sale"},
)


def _error(text: str, catalog: Catalog | None = CATALOG) -> SegmentError:
    with pytest.raises(SegmentError) as caught:
        parse(text, catalog=catalog)
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "column", "expected", "suggestion"),
    [
        ("totl_spend > 200", 1, 1, ["a known field"], "total_spend"),
        ("age > 3 and\n  churn_dangr < 0.5", 2, 3, ["a known field"], "churn_danger"),
        ("propensity.purchase_31d > 0.5", 1, 1, ["a known field"], "propensity.purchase_30d"),
        ('did "page_view"', 1, 5, ["a known event"], "page_viewed"),
        ('first did "order_complete" before 2025-01-01', 1, 11, ["a known event"], "order_completed"),
        ('in segment "Staf"', 1, 12, ["a known segment"], "Staff"),
        ('within 5 km of store "Leeds Brigate"', 1, 22, ["a known store"], "Leeds Briggate"),
        ('subscribed to sms topic "offer"', 1, 25, ["a known topic"], "offers"),
        ('email.opened campaign "Spring sail"', 1, 23, ["a known campaign"], "Spring sale"),
        ("zzz = 1", 1, 1, ["a known field"], None),
        ('age > "old"', 1, 7, ["a number"], None),
        ('city in ("Leeds", 3)', 1, 9, ["a string"], None),
        ('tags = "x"', 1, 8, ["contains", "in", "not in"], None),
        ("city in next 3 days", 1, 1, ["a date field"], None),
        ("signup_date > 2025-01-01 and signup_date = 5", 1, 44, ["a date"], None),
    ],
)
def test_catalogue_errors_point_at_the_name_and_suggest_the_nearest(
    text: str, line: int, column: int, expected: list[str], suggestion: str | None
) -> None:
    error = _error(text)
    assert (error.line, error.column, error.expected, error.suggestion) == (
        line,
        column,
        expected,
        suggestion,
    )


@pytest.mark.parametrize(
    ("text", "line", "column", "expected_contains", "message_contains"),
    [
        ("purchased at least three times", 1, 20, "a number of times", "found 'three'"),
        ('city in ("Leeds", "York"', 1, 25, ")", "found the end of the segment"),
        ("city = ", 1, 8, "a string", "expected a value"),
        ("a = 1 b = 2", 1, 7, "and", "unexpected 'b'"),
        ("a = 1 and\n\n  (b = 2 or", 3, 12, "a field", "expected a condition"),
        ('did "x" between 2025-02-01 and 2025-01-01', 1, 9, None, "earlier date first"),
        ("d > 2025-02-30", 1, 5, "a date YYYY-MM-DD", "not a calendar date"),
        ("random bucket < 150%", 1, 17, None, "between 0 and 100"),
        ("random bucket = 5%", 1, 15, "<", "expected <, <=, > or >="),
        ('x = "abc', 1, 5, 'a closing "', "never closed"),
        ('x = "a\\qb"', 1, 7, "\\n", "unknown escape"),
        ("x ~ 1", 1, 3, "a condition", "unexpected character '~'"),
        ("within 0 km of (1, 2)", 1, 8, None, "more than 0"),
        ("within 1 km of (91, 2)", 1, 16, None, "latitude"),
        ("within 1 mile of (1, 2)", 1, 10, "km", "expected km"),
        ('did "x" in last 0 days', 1, 17, "a number of days or hours", "whole number"),
        ("subscribed to fax", 1, 15, "email", "expected a channel"),
        ("unsubscribed to sms", 1, 14, "from", "expected from"),
        ("first purchased", 1, 16, "more than", "expected before or after"),
        ("last x before 2025-01-01", 1, 6, "did", "expected did or an event verb"),
        ("", 1, 1, "a field", "found the end of the segment"),
        ("not", 1, 4, "did", "expected a condition"),
        ("(a = 1", 1, 7, ")", "expected ')'"),
        ("a = 1)", 1, 6, "or", "unexpected ')'"),
        ("and a = 1", 1, 1, "a field", "expected a condition"),
        ("in staff", 1, 4, "segment", "expected segment"),
        ("a is maybe", 1, 6, "not set", "expected set, not set or today"),
        ("a = 1e999", 1, 5, "a finite number", "too large"),
        ('did "x" where a = 1 and b = 2 at least 3 times', 1, 31, "and", "needs parentheses"),
        ('did "x" where in = 1', 1, 15, "a property name", "expected a property name"),
        ("a more 3 days ago", 1, 8, "than", "expected than"),
    ],
)
def test_parse_errors_name_line_column_and_what_was_expected(
    text: str, line: int, column: int, expected_contains: str | None, message_contains: str
) -> None:
    error = _error(text, catalog=None)
    assert (error.line, error.column) == (line, column), error.message
    if expected_contains is not None:
        assert expected_contains in error.expected
    assert message_contains in error.message
    assert error.message.startswith(f"line {line}, column {column}: ")


def test_a_misspelt_operator_or_verb_gets_a_suggestion_without_a_catalogue() -> None:
    assert _error('city startswith "L"', catalog=None).suggestion == "starts with"
    assert _error("city contain 'x'", catalog=None).suggestion == "contains"
    verb = _error("purchsed at least 3 times", catalog=None)
    assert (verb.line, verb.column, verb.suggestion) == (1, 1, "purchased")


def test_an_unknown_field_close_to_a_verb_suggests_the_verb() -> None:
    assert _error("purchsed at least 3 times").suggestion == "purchased"


def test_a_segment_error_is_a_400_validation_failure_with_details() -> None:
    error = _error("totl_spend > 200")
    assert isinstance(error, ValidationFailed)
    assert error.status_code == 400
    assert error.to_dict() == {
        "error": {
            "code": "invalid_segment",
            "message": "line 1, column 1: unknown field 'totl_spend' (did you mean 'total_spend'?)",
            "details": {
                "line": 1,
                "column": 1,
                "expected": ["a known field"],
                "suggestion": "total_spend",
                "path": None,
            },
        }
    }


def test_render_shows_the_line_and_a_caret() -> None:
    text = 'city = "Leeds" and\n  age > "x"'
    error = _error(text)
    assert error.render(text).splitlines()[1:] == ['    age > "x"', "          ^"]


def test_where_clauses_name_event_properties_which_the_catalogue_does_not_check() -> None:
    tree = parse('did "page_viewed" where anything_at_all contains "/sale"', catalog=CATALOG)
    assert tree == Did("page_viewed", Compare("anything_at_all", "contains", "/sale"))


def test_a_catalogue_without_a_kind_of_name_does_not_check_it() -> None:
    lenient = Catalog(traits={"city": "string"})
    assert parse('did "anything" and in segment "Whatever"', catalog=lenient)
    with pytest.raises(SegmentError, match="unknown field 'age'"):
        parse("age > 3", catalog=lenient)


def test_check_reports_trees_from_json_without_a_position() -> None:
    with pytest.raises(SegmentError) as caught:
        check(InSegment("Staf"), CATALOG)
    assert (caught.value.line, caught.value.column, caught.value.suggestion) == (None, None, "Staff")


def test_aliases_must_be_plain_non_keyword_words() -> None:
    for alias in ("in", "two words", "email.opened", "Not"):
        with pytest.raises(SegmentError, match="cannot be an event alias"):
            Catalog(event_aliases={alias: "x"})


def test_field_info_says_where_a_field_lives() -> None:
    assert CATALOG.field_info("city") == FieldInfo("city", "string", "trait")
    assert CATALOG.field_info("total_spend") == FieldInfo("total_spend", "number", "computed")
    assert CATALOG.field_info("propensity.purchase_30d") == FieldInfo(
        "propensity.purchase_30d", "number", "score"
    )
    assert CATALOG.field_info("nope") is None
    assert CATALOG.field_names()[:3] == ["age", "churn_danger", "city"]


def test_absurd_inputs_are_refused_cleanly() -> None:
    deep = "(" * 150 + "a = 1" + ")" * 150
    error = _error(deep, catalog=None)
    assert "nested more than 100 deep" in error.message
    assert parse("(" * 50 + "a = 1" + ")" * 50) == parse("a = 1")
    assert "at most 20000 characters" in _error("a = 1 or " * 3000 + "a = 1", catalog=None).message
    assert "at most 36,500" in _error('did "x" in last 36501 days', catalog=None).message
    assert parse('did "x" in last 876000 hours')
    assert "at most 36,500" in _error("d in next 99999999 days", catalog=None).message


def test_a_quoted_date_on_a_date_field_says_how_to_write_it() -> None:
    error = _error('signup_date > "2025-01-01"')
    assert (
        error.reason
        == "'signup_date' is a date field; '2025-01-01' is a string (write dates without quotes: 2025-01-01)"
    )
    assert (error.line, error.column) == (1, 15)


def test_a_birthday_compares_its_anniversary_or_is_refused_with_the_fix() -> None:
    catalog = Catalog(traits={"birthday": "date", "contract_end": "date"})
    error = _error("birthday is today", catalog)
    assert (error.line, error.column, error.suggestion) == (1, 1, "birthday anniversary is today")
    assert _error("birthday in last 3 days", catalog).suggestion == "birthday anniversary in last 3 days"
    assert parse("birthday anniversary in next 7 days and birthday more than 6570 days ago", catalog=catalog)
    assert parse("contract_end is today", catalog=catalog)
    assert parse("birthday is today", catalog=Catalog(traits={"birthday": "date"}, annual_dates=()))
