"""The JSON form: its exact shape, defaults on the way in, and errors that name the path."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.segments import SegmentError, from_json, parse, to_json
from rapport.segments.ast import Compare, Did, InLast


def test_the_document_shape_is_versioned_and_explicit() -> None:
    tree = parse("purchased where amount > 50 at least 3 times in last 90 days and signup_date < 2025-01-01")
    assert to_json(tree) == {
        "version": 1,
        "root": {
            "type": "and",
            "items": [
                {
                    "type": "did",
                    "event": "order_completed",
                    "where": {"type": "compare", "field": "amount", "op": ">", "value": 50},
                    "count": {"op": "at least", "n": 3},
                    "window": {"kind": "in last", "amount": 90, "unit": "days"},
                },
                {"type": "compare", "field": "signup_date", "op": "<", "value": {"date": "2025-01-01"}},
            ],
        },
    }


def test_every_node_kind_has_a_json_shape() -> None:
    text = (
        'a in (1, "x", true, 2025-01-01) and b is not set and c anniversary in next 3 days and '
        'first did "x" before 10 days ago and last did "x" after 2025-01-01 and '
        'sms.clicked campaign "C" exactly 2 times between 2025-01-01 and 2025-01-31 and '
        'unsubscribed from email topic "news" and in segment "S" and within 2 km of store "L" and '
        'within 1.5 km of (53.8, -1.55) and random bucket < 10% seed "s" and not message.sent'
    )
    items = to_json(parse(text))["root"]["items"]
    assert items == [
        {"type": "compare", "field": "a", "op": "in", "value": [1, "x", True, {"date": "2025-01-01"}]},
        {"type": "is_set", "field": "b", "is_set": False},
        {"type": "date_relative", "field": "c", "kind": "in next", "days": 3, "anniversary": True},
        {
            "type": "event_time",
            "which": "first",
            "event": "x",
            "where": None,
            "op": "before",
            "point": {"days_ago": 10},
        },
        {
            "type": "event_time",
            "which": "last",
            "event": "x",
            "where": None,
            "op": "after",
            "point": {"date": "2025-01-01"},
        },
        {
            "type": "engagement",
            "channel": "sms",
            "action": "clicked",
            "campaign": "C",
            "count": {"op": "exactly", "n": 2},
            "window": {"kind": "between", "start": "2025-01-01", "end": "2025-01-31"},
        },
        {"type": "subscription", "channel": "email", "state": "unsubscribed", "topic": "news"},
        {"type": "in_segment", "segment": "S"},
        {"type": "within", "km": 2.0, "target": {"store": "L"}},
        {"type": "within", "km": 1.5, "target": {"lat": 53.8, "lon": -1.55}},
        {"type": "random_bucket", "op": "<", "percent": 10.0, "seed": "s"},
        {
            "type": "not",
            "item": {
                "type": "engagement",
                "channel": None,
                "action": "sent",
                "campaign": None,
                "count": {"op": "at least", "n": 1},
                "window": {"kind": "ever"},
            },
        },
    ]


def test_keys_with_defaults_may_be_left_out() -> None:
    assert from_json({"version": 1, "root": {"type": "did", "event": "x"}}) == Did("x")
    document = {
        "version": 1,
        "root": {"type": "did", "event": "x", "window": {"kind": "in last", "amount": 7}},
    }
    assert from_json(document) == Did("x", window=InLast(7))
    assert from_json(
        {"version": 1, "root": {"type": "compare", "field": "d", "op": "=", "value": {"date": "2025-02-03"}}}
    ) == Compare("d", "=", date(2025, 2, 3))


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ([], "$", "must be an object"),
        ({"root": {"type": "in_segment", "segment": "S"}}, "version", "unsupported segment version None"),
        ({"version": 2, "root": {}}, "version", "unsupported segment version 2"),
        ({"version": 1}, "$", "missing key 'root'"),
        ({"version": 1, "root": {}, "extra": 1}, "$", "unexpected key 'extra'"),
        ({"version": 1, "root": {"type": "maybe"}}, "root.type", "unknown condition type 'maybe'"),
        (
            {"version": 1, "root": {"type": "and", "items": [{"type": "in_segment", "segment": "S"}]}},
            "root",
            "at least two conditions",
        ),
        (
            {
                "version": 1,
                "root": {
                    "type": "or",
                    "items": [{"type": "in_segment", "segment": "S"}, {"type": "in_segment"}],
                },
            },
            "root.items[1]",
            "missing key 'segment'",
        ),
        (
            {"version": 1, "root": {"type": "compare", "field": "a", "op": "~", "value": 1}},
            "root",
            "comparison operator must be one of",
        ),
        (
            {"version": 1, "root": {"type": "compare", "field": "a", "op": "=", "value": None}},
            "root.value",
            "expected a string, number, boolean",
        ),
        (
            {
                "version": 1,
                "root": {"type": "compare", "field": "a", "op": "=", "value": {"date": "2025-13-01"}},
            },
            "root.value.date",
            "not a date",
        ),
        (
            {"version": 1, "root": {"type": "compare", "field": 3, "op": "=", "value": 1}},
            "root.field",
            "expected a string",
        ),
        (
            {"version": 1, "root": {"type": "did", "event": "x", "count": {"op": "at least", "n": -1}}},
            "root.count",
            "whole number of at least 0",
        ),
        (
            {"version": 1, "root": {"type": "did", "event": "x", "window": {"kind": "soon"}}},
            "root.window.kind",
            "window kind",
        ),
        (
            {
                "version": 1,
                "root": {"type": "did", "event": "x", "where": {"type": "in_segment", "segment": "S"}},
            },
            "root",
            "where takes property comparisons",
        ),
        (
            {
                "version": 1,
                "root": {"type": "not", "item": {"type": "within", "km": 0, "target": {"store": "L"}}},
            },
            "root.item",
            "distance must be more than 0",
        ),
        (
            {"version": 1, "root": {"type": "within", "km": 1, "target": {"lat": 100, "lon": 0}}},
            "root.target",
            "latitude",
        ),
        (
            {"version": 1, "root": {"type": "random_bucket", "op": "<", "percent": "10"}},
            "root",
            "percentage must be a finite number",
        ),
        (
            {"version": 1, "root": {"type": "in_segment", "segment": "S", "colour": "red"}},
            "root",
            "unexpected key 'colour'",
        ),
    ],
)
def test_bad_documents_are_refused_naming_the_path(document: Any, path: str, message: str) -> None:
    with pytest.raises(SegmentError) as caught:
        from_json(document)
    assert caught.value.path == path
    assert message in caught.value.message
    assert caught.value.details["path"] == path
    assert caught.value.line is None


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 5),
        st.floats(allow_nan=False),
        st.sampled_from(
            ["and", "or", "not", "did", "compare", "within", "=", "in", "ever", "in last", "x", "2025-01-01"]
        ),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "items",
                    "item",
                    "field",
                    "op",
                    "value",
                    "event",
                    "count",
                    "window",
                    "kind",
                    "n",
                    "amount",
                    "km",
                    "target",
                    "store",
                    "lat",
                    "lon",
                    "where",
                    "date",
                    "point",
                ]
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_any_json_either_decodes_to_a_tree_or_raises_a_segment_error_with_a_path(root: Any) -> None:
    try:
        tree = from_json({"version": 1, "root": root})
    except SegmentError as error:
        assert error.path
        return
    assert from_json(to_json(tree)) == tree
