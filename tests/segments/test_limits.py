"""Every number a segment can hold has a bound: beyond it the parser, or the decoder for JSON, refuses it with
a positioned error; at the bound the segment still compiles to a query SQLite and PostgreSQL both run."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from rapport.runtime import Runtime
from rapport.segments import (
    EventFact,
    ProfileFacts,
    SegmentError,
    evaluate,
    from_json,
    parse,
    to_json,
    to_text,
)
from rapport.segments.ast import MAX_COUNT, MAX_DAYS, MAX_HOURS, MAX_NUMBER, Compare, Count, Did
from rapport.segments.compiler import Scope
from tests.segments import sqldata
from tests.segments.typed import CATALOG, NOW
from tests.support.tenants import Tenant

HUGE = "100000000000000000000"  # 10**20: beyond every count and span, inside a double
ENORMOUS = "1" + "0" * 400  # beyond every double
ENDLESS = "1" + "0" * 5000  # beyond what Python decodes from text without being told to
TOO_BIG = "numbers must lie between -1.7976931348623157e+308 and 1.7976931348623157e+308"


@pytest.mark.parametrize(
    ("text", "column", "reason"),
    [
        # the report: the builder's live count and Save answered 500 for this
        (f"purchased at least {HUGE} times in last 30 days", 20, "a count must be at most 1,000,000,000"),
        (f"purchased at most {HUGE} times", 19, "a count must be at most 1,000,000,000"),
        (f'did "x" exactly {HUGE} times', 17, "a count must be at most 1,000,000,000"),
        (f"email.opened at least {HUGE} times", 23, "a count must be at most 1,000,000,000"),
        (f"purchased at least {MAX_COUNT + 1} times", 20, "a count must be at most 1,000,000,000"),
        (f"purchased in last {HUGE} days", 19, "window length in days must be at most 36,500"),
        (f"purchased in last {MAX_HOURS + 1} hours", 19, "window length in hours must be at most 876,000"),
        (f"sms.clicked in last {HUGE} hours", 21, "window length in hours must be at most 876,000"),
        (f"signup_date in next {HUGE} days", 21, "a number of days must be at most 36,500"),
        (f"signup_date in last {MAX_DAYS + 1} days", 21, "a number of days must be at most 36,500"),
        (f"signup_date more than {HUGE} days ago", 23, "a number of days must be at most 36,500"),
        (f"signup_date less than {HUGE} days ago", 23, "a number of days must be at most 36,500"),
        (f"birthday anniversary in next {HUGE} days", 30, "a number of days must be at most 36,500"),
        (f"last purchased more than {HUGE} days ago", 26, "a number of days must be at most 36,500"),
        (f"first purchased before {MAX_DAYS + 1} days ago", 24, "a number of days must be at most 36,500"),
        (f"total_spend > {ENORMOUS}", 15, TOO_BIG),
        (f"total_spend > -{ENORMOUS}", 15, TOO_BIG),
        (f"total_spend > {ENDLESS}", 15, TOO_BIG),
        (f"total_spend = {int(MAX_NUMBER) + 1}", 15, TOO_BIG),
        ("total_spend > 1e400", 15, TOO_BIG),
        ("total_spend < -1e400", 15, TOO_BIG),
        (f"total_spend in (1, {ENORMOUS})", 20, TOO_BIG),
        (f'did "x" where amount > {ENORMOUS}', 24, TOO_BIG),
        (f"within {ENORMOUS} km of (1, 2)", 8, TOO_BIG),
        (f"within 5 km of ({ENORMOUS}, 2)", 17, TOO_BIG),
        (f"within 5 km of (1, {ENORMOUS})", 20, TOO_BIG),
        (f"random bucket < {ENORMOUS}%", 17, TOO_BIG),
    ],
)
def test_an_oversized_number_is_refused_where_it_stands(text: str, column: int, reason: str) -> None:
    with pytest.raises(SegmentError) as caught:
        parse(text, catalog=CATALOG)
    error = caught.value
    assert (error.line, error.column) == (1, column), error.message
    assert reason in error.reason
    assert error.status_code == 400
    assert error.render(text).splitlines()[2] == "  " + " " * (column - 1) + "^"


def test_a_number_too_long_to_show_is_shortened_in_the_message() -> None:
    with pytest.raises(SegmentError) as caught:
        parse(f"a = {ENDLESS}")
    assert caught.value.reason == f"100000000000… (5,001 characters) is too large: {TOO_BIG}"
    assert caught.value.expected == ["a finite number"]


def test_leading_zeros_do_not_make_a_number_large() -> None:
    assert parse("a = " + "0" * 5000 + "7") == Compare("a", "=", 7)


def _document(root: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "root": root}


@pytest.mark.parametrize(
    ("root", "path", "reason"),
    [
        ({"type": "did", "event": "x", "count": {"n": 10**20}}, "root.count", "a count must be at most"),
        (
            {"type": "engagement", "action": "opened", "count": {"op": "exactly", "n": MAX_COUNT + 1}},
            "root.count",
            "a count must be at most 1,000,000,000",
        ),
        (
            {"type": "did", "event": "x", "window": {"kind": "in last", "amount": 10**20}},
            "root.window",
            "window length in days must be at most 36,500",
        ),
        (
            {"type": "date_relative", "field": "d", "kind": "in next", "days": 10**20},
            "root",
            "a number of days must be at most 36,500",
        ),
        (
            {
                "type": "event_time",
                "which": "last",
                "event": "x",
                "op": "before",
                "point": {"days_ago": 10**20},
            },
            "root.point",
            "a number of days must be at most 36,500",
        ),
        ({"type": "compare", "field": "a", "op": ">", "value": 10**400}, "root", TOO_BIG),
        ({"type": "compare", "field": "a", "op": ">", "value": -(10**400)}, "root", TOO_BIG),
        ({"type": "compare", "field": "a", "op": "in", "value": [1, 10**400]}, "root", TOO_BIG),
        ({"type": "compare", "field": "a", "op": ">", "value": float("inf")}, "root", "a finite number"),
        ({"type": "compare", "field": "a", "op": "=", "value": float("nan")}, "root", "a finite number"),
        ({"type": "within", "km": 10**400, "target": {"store": "L"}}, "root", TOO_BIG),
        ({"type": "within", "km": 1, "target": {"lat": 10**400, "lon": 0}}, "root.target", TOO_BIG),
        ({"type": "random_bucket", "op": "<", "percent": 10**400}, "root", TOO_BIG),
    ],
)
def test_an_oversized_number_in_json_is_refused_at_its_path(
    root: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(SegmentError) as caught:
        from_json(_document(root))
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert caught.value.line is None


#: Each bound, just inside: text that parses, prints back the same and runs on both databases.
AT_THE_BOUNDS = [
    f"purchased at least {MAX_COUNT} times",
    f"purchased at most {MAX_COUNT} times",
    f"purchased exactly {MAX_COUNT} times in last {MAX_DAYS} days",
    f"not email.opened at least {MAX_COUNT} times in last {MAX_HOURS} hours",
    f"signup_date more than {MAX_DAYS} days ago",
    f"signup_date in last {MAX_DAYS} days",
    f"birthday anniversary in next {MAX_DAYS} days",
    f"last purchased less than {MAX_DAYS} days ago",
    f"first purchased before {MAX_DAYS} days ago",
    f"total_spend > {HUGE}",
    f"total_spend < {int(MAX_NUMBER)}",
    f"total_spend > -{int(MAX_NUMBER)}",
    f"total_spend < {MAX_NUMBER!r}",
    f"age in (-{MAX_NUMBER!r}, 30, {int(MAX_NUMBER)})",
    f'did "order_completed" where amount < {int(MAX_NUMBER)}',
    f"within {MAX_NUMBER!r} km of (0, 0)",
    "purchased between 0001-01-01 and 9999-12-31",
    "first purchased after 9999-12-31",
    "last purchased after 9999-12-31",
    "last purchased before 9999-12-31",
    "first purchased before 0001-01-01",
    "signup_date < 9999-12-31",
]


@pytest.mark.parametrize("text", AT_THE_BOUNDS)
def test_a_number_at_its_bound_parses_and_prints_back(text: str) -> None:
    tree = parse(text, catalog=CATALOG)
    assert parse(to_text(tree, catalog=CATALOG), catalog=CATALOG) == tree
    assert from_json(to_json(tree)) == tree


def test_json_takes_the_same_bounds() -> None:
    did = from_json(_document({"type": "did", "event": "x", "count": {"n": MAX_COUNT}}))
    assert isinstance(did, Did) and did.count == Count("at least", MAX_COUNT)
    compare = from_json(_document({"type": "compare", "field": "a", "op": "<", "value": -int(MAX_NUMBER)}))
    assert compare == Compare("a", "<", -int(MAX_NUMBER))


def test_numbers_at_their_bounds_run_on_both_databases_as_the_evaluator_answers(
    runtime: Runtime, tenant: Tenant
) -> None:
    day = NOW - timedelta(days=3)
    facts = [
        ProfileFacts(
            "x",
            {"total_spend": 250, "age": 30, "signup_date": date(2000, 1, 1), "birthday": date(1990, 3, 4)},
            events=[EventFact("order_completed", day, {"amount": 5}), EventFact("order_completed", day)],
            location=(53.8, -1.55),
        ),
        ProfileFacts("x", {"total_spend": 1e300, "age": 31.5, "signup_date": NOW.date()}),
        ProfileFacts("x", {"total_spend": -1e308, "signup_date": date(9999, 12, 31)}),
        ProfileFacts("x", {}, events=[EventFact("order_completed", NOW - timedelta(days=MAX_DAYS - 1))]),
    ]
    with runtime.engine.begin() as conn:
        stored = sqldata.load(
            conn, tenant.workspace_id, facts, catalog=CATALOG, segment_ids={}, first_id=9000
        )
    scope = Scope(workspace_id=tenant.workspace_id, now=NOW, catalog=CATALOG)
    answers: dict[str, set[int]] = {}
    with runtime.engine.connect() as conn:
        for text in AT_THE_BOUNDS:
            tree = parse(text, catalog=CATALOG)
            expected = {int(f.profile_id) for f in stored if evaluate(tree, f, NOW, catalog=CATALOG)}
            assert sqldata.matching_ids(conn, tree, scope) == expected, text
            per_profile = replace(scope, per_profile=True)
            assert sqldata.matching_ids(conn, tree, per_profile, [9000, 9001, 9002, 9003]) == expected, text
            answers[text] = expected
    # the bounds are not vacuous: some of these conditions hold for someone
    assert answers[f"purchased at most {MAX_COUNT} times"] == {9000, 9001, 9002, 9003}
    assert answers[f"purchased at least {MAX_COUNT} times"] == set()
    assert answers[f"total_spend < {MAX_NUMBER!r}"] == {9000, 9001, 9002}
    assert answers[f"total_spend > -{int(MAX_NUMBER)}"] == {9000, 9001, 9002}
    assert answers["purchased between 0001-01-01 and 9999-12-31"] == {9000, 9003}
    assert answers["last purchased before 9999-12-31"] == {9000, 9003}
    assert answers["signup_date < 9999-12-31"] == {9000, 9001}
    assert answers[f"within {MAX_NUMBER!r} km of (0, 0)"] == {9000}
    assert answers[f"signup_date more than {MAX_DAYS} days ago"] == set()
    assert answers[f"last purchased less than {MAX_DAYS} days ago"] == {9000, 9003}
