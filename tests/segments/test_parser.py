"""Parsing every construct of the language into the exact tree, and printing it back canonically."""

from __future__ import annotations

from datetime import date

import pytest

from rapport.segments import Catalog, parse, to_text
from rapport.segments.ast import (
    And,
    Between,
    Compare,
    Count,
    DateRelative,
    DaysAgo,
    Did,
    Engagement,
    EventTime,
    Ever,
    InLast,
    InSegment,
    IsSet,
    Node,
    Not,
    Or,
    Point,
    RandomBucket,
    Store,
    Subscription,
    Within,
)

REFERENCE = (
    "purchased at least 3 times in last 90 days and total_spend > 200 and email.opened in last 30 days and\n"
    'city in ("Leeds", "York") and not in segment "Staff"'
)


def test_the_reference_segment_of_the_issue() -> None:
    assert parse(REFERENCE) == And(
        (
            Did("order_completed", count=Count("at least", 3), window=InLast(90)),
            Compare("total_spend", ">", 200),
            Engagement("opened", "email", window=InLast(30)),
            Compare("city", "in", ("Leeds", "York")),
            Not(InSegment("Staff")),
        )
    )
    assert to_text(parse(REFERENCE)) == REFERENCE.replace("\n", " ")


CASES: list[tuple[str, Node, str | None]] = [
    # traits: every operator and literal kind
    ('city = "Leeds"', Compare("city", "=", "Leeds"), None),
    ("city == 'Leeds'", Compare("city", "=", "Leeds"), 'city = "Leeds"'),
    ("age != 30", Compare("age", "!=", 30), None),
    ("total_spend >= 199.5", Compare("total_spend", ">=", 199.5), None),
    ("clv_12m < -1e3", Compare("clv_12m", "<", -1000.0), "clv_12m < -1000.0"),
    ("churn_danger <= 0.25", Compare("churn_danger", "<=", 0.25), None),
    ("is_vip = true", Compare("is_vip", "=", True), None),
    ("is_vip != FALSE", Compare("is_vip", "!=", False), "is_vip != false"),
    ("signup_date > 2025-01-31", Compare("signup_date", ">", date(2025, 1, 31)), None),
    ('email contains "@example"', Compare("email", "contains", "@example"), None),
    ('tags contains "vip"', Compare("tags", "contains", "vip"), None),
    ('postcode starts with "LS"', Compare("postcode", "starts with", "LS"), None),
    (
        'rfm_segment in ("champions", "loyal",)',
        Compare("rfm_segment", "in", ("champions", "loyal")),
        'rfm_segment in ("champions", "loyal")',
    ),
    ("score not in (1, 2.5)", Compare("score", "not in", (1, 2.5)), None),
    ("propensity.purchase_30d > 0.7", Compare("propensity.purchase_30d", ">", 0.7), None),
    ("email is set", IsSet("email"), None),
    ("phone is not set", IsSet("phone", False), None),
    ('`first name` = "Ann"', Compare("first name", "=", "Ann"), None),
    ('`in` = "x"', Compare("in", "=", "x"), None),
    ('note = "say \\"hi\\"\\n\\u00e9"', Compare("note", "=", 'say "hi"\né'), 'note = "say \\"hi\\"\\né"'),
    # date-relative traits
    ("contract_end in next 30 days", DateRelative("contract_end", "in next", 30), None),
    ("contract_end in last 7 days", DateRelative("contract_end", "in last", 7), None),
    ("contract_end in next 1 day", DateRelative("contract_end", "in next", 1), None),
    ("birthday is today", DateRelative("birthday", "today"), None),
    ("birthday anniversary is today", DateRelative("birthday", "today", 0, True), None),
    ("birthday anniversary in next 7 days", DateRelative("birthday", "in next", 7, True), None),
    ("signup_date more than 365 days ago", DateRelative("signup_date", "more than ago", 365), None),
    ("signup_date less than 30 days ago", DateRelative("signup_date", "less than ago", 30), None),
    # events
    ('did "page_viewed"', Did("page_viewed"), None),
    ("did page_viewed ever", Did("page_viewed"), 'did "page_viewed"'),
    (
        'did "page_viewed" where url contains "/sale" in last 7 days',
        Did("page_viewed", Compare("url", "contains", "/sale"), window=InLast(7)),
        None,
    ),
    (
        'did "order_completed" where (amount > 50 and store = "Leeds") at most 2 times in last 24 hours',
        Did(
            "order_completed",
            And((Compare("amount", ">", 50), Compare("store", "=", "Leeds"))),
            Count("at most", 2),
            InLast(24, "hours"),
        ),
        'purchased where (amount > 50 and store = "Leeds") at most 2 times in last 24 hours',
    ),
    (
        'did "x" in last 1 hour exactly 0 times',
        Did("x", count=Count("exactly", 0), window=InLast(1, "hours")),
        'did "x" exactly 0 times in last 1 hour',
    ),
    (
        'did "x" between 2025-01-01 and 2025-03-31',
        Did("x", window=Between(date(2025, 1, 1), date(2025, 3, 31))),
        None,
    ),
    ('did not "x" in last 7 days', Not(Did("x", window=InLast(7))), None),
    ("not purchased", Not(Did("order_completed")), None),
    ("purchased at least 1 time", Did("order_completed"), "purchased"),
    (
        'did "x" where not product.category is set',
        Did("x", Not(IsSet("product.category"))),
        'did "x" where (not product.category is set)',
    ),
    # first / last time
    (
        'first did "app_installed" before 2025-01-01',
        EventTime("first", "app_installed", "before", date(2025, 1, 1)),
        None,
    ),
    (
        "last time purchased more than 30 days ago",
        EventTime("last", "order_completed", "before", DaysAgo(30)),
        "last purchased more than 30 days ago",
    ),
    (
        "last purchased after 10 days ago",
        EventTime("last", "order_completed", "after", DaysAgo(10)),
        "last purchased less than 10 days ago",
    ),
    (
        'first did "order_completed" where amount > 100 after 2025-06-01',
        EventTime("first", "order_completed", "after", date(2025, 6, 1), Compare("amount", ">", 100)),
        "first purchased where amount > 100 after 2025-06-01",
    ),
    # message engagement
    ("email.opened in last 30 days", Engagement("opened", "email", window=InLast(30)), None),
    (
        'sms.clicked campaign "Spring sale" at least 2 times',
        Engagement("clicked", "sms", "Spring sale", Count("at least", 2)),
        None,
    ),
    ("message.bounced", Engagement("bounced"), None),
    ("Push.Delivered", Engagement("delivered", "push"), "push.delivered"),
    (
        "inapp.sent exactly 0 times in last 7 days",
        Engagement("sent", "inapp", None, Count("exactly", 0), InLast(7)),
        None,
    ),
    ("webhook.unsubscribed", Engagement("unsubscribed", "webhook"), None),
    # subscriptions
    ("subscribed to email", Subscription("email"), None),
    ('subscribed to sms topic "offers"', Subscription("sms", "subscribed", "offers"), None),
    ("unsubscribed from sms", Subscription("sms", "unsubscribed"), None),
    ('unsubscribed from push topic "news"', Subscription("push", "unsubscribed", "news"), None),
    # membership, location, buckets
    ('in segment "Staff"', InSegment("Staff"), None),
    ('not in segment "Staff"', Not(InSegment("Staff")), None),
    ('within 5 km of store "Leeds Briggate"', Within(5, Store("Leeds Briggate")), None),
    ("within 2.5 km of (53.8, -1.55)", Within(2.5, Point(53.8, -1.55)), None),
    ("random bucket < 10%", RandomBucket("<", 10), None),
    ('random bucket >= 12.5% seed "spring"', RandomBucket(">=", 12.5, "spring"), None),
    # boolean structure and precedence: not > and > or
    (
        "a = 1 or b = 2 and c = 3",
        Or((Compare("a", "=", 1), And((Compare("b", "=", 2), Compare("c", "=", 3))))),
        None,
    ),
    (
        "(a = 1 or b = 2) and c = 3",
        And((Or((Compare("a", "=", 1), Compare("b", "=", 2))), Compare("c", "=", 3))),
        None,
    ),
    ("not a = 1 and b = 2", And((Not(Compare("a", "=", 1)), Compare("b", "=", 2))), None),
    ("not (a = 1 and b = 2)", Not(And((Compare("a", "=", 1), Compare("b", "=", 2)))), None),
    (
        "(a = 1 and b = 2) and c = 3",
        And((And((Compare("a", "=", 1), Compare("b", "=", 2))), Compare("c", "=", 3))),
        None,
    ),
    ("((a = 1))", Compare("a", "=", 1), "a = 1"),
    (
        "A = 1 AND NOT b = 2 Or c Is Set",
        Or((And((Compare("A", "=", 1), Not(Compare("b", "=", 2)))), IsSet("c"))),
        "A = 1 and not b = 2 or c is set",
    ),
    ("# staff are excluded\na = 1 # trailing comment\n", Compare("a", "=", 1), "a = 1"),
]


@pytest.mark.parametrize(("text", "tree", "canonical"), CASES, ids=[c[0][:50] for c in CASES])
def test_each_construct_parses_to_its_tree_and_prints_canonically(
    text: str, tree: Node, canonical: str | None
) -> None:
    assert parse(text) == tree
    assert to_text(tree) == (canonical or text)
    assert parse(to_text(tree)) == tree


def test_catalogue_aliases_replace_the_default_verb() -> None:
    catalog = Catalog(event_aliases={"ordered": "checkout_done", "visited": "store_visit"})
    tree = parse("ordered at least 2 times and visited in last 7 days", catalog=catalog)
    assert tree == And(
        (Did("checkout_done", count=Count("at least", 2)), Did("store_visit", window=InLast(7)))
    )
    assert to_text(tree, catalog=catalog) == "ordered at least 2 times and visited in last 7 days"
    assert to_text(Did("order_completed"), catalog=catalog) == 'did "order_completed"'
    # without the alias, "purchased" is just a field again
    assert parse("purchased = true", catalog=catalog) == Compare("purchased", "=", True)


def test_a_field_named_like_an_alias_is_quoted_so_it_stays_a_field() -> None:
    tree = Compare("purchased", "=", True)
    assert to_text(tree) == "`purchased` = true"
    assert parse(to_text(tree)) == tree


def test_nested_and_inside_or_needs_no_parentheses_but_or_inside_and_does() -> None:
    tree = And((Or((IsSet("a"), IsSet("b"))), Not(Or((IsSet("c"), IsSet("d"))))))
    assert to_text(tree) == "(a is set or b is set) and not (c is set or d is set)"


def test_default_count_and_window_are_omitted() -> None:
    assert to_text(Did("x", count=Count(), window=Ever())) == 'did "x"'
