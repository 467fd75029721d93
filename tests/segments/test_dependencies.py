"""Segment references: cycle detection through a resolver, and what a segment depends on."""

from __future__ import annotations

import pytest

from rapport.segments import SegmentError, check_cycles, dependencies, parse, referenced_segments
from rapport.segments.ast import Node

DEFINITIONS = {
    "Staff": 'email contains "@rapport.example"',
    "VIP": 'total_spend > 1000 and not in segment "Staff"',
    "Loyal": 'in segment "VIP" or purchased at least 5 times',
    "A": 'in segment "B"',
    "B": 'in segment "C" and city = "Leeds"',
    "C": 'in segment "A" or in segment "Staff"',
}


def _resolve(name: str) -> Node | None:
    text = DEFINITIONS.get(name)
    return parse(text) if text is not None else None


def test_referenced_segments_are_found_at_any_depth() -> None:
    tree = parse('(in segment "X" or not (a = 1 and in segment "Y")) and in segment "X"')
    assert referenced_segments(tree) == {"X", "Y"}


def test_an_acyclic_graph_passes() -> None:
    check_cycles("Loyal", parse(DEFINITIONS["Loyal"]), _resolve)
    check_cycles("New", parse('in segment "Loyal" and in segment "VIP" and in segment "Unknown"'), _resolve)


def test_a_cycle_through_other_segments_is_named_in_order() -> None:
    with pytest.raises(SegmentError) as caught:
        check_cycles("A", parse(DEFINITIONS["A"]), _resolve)
    assert caught.value.message == "segment cycle: 'A' → 'B' → 'C' → 'A'"


def test_a_segment_naming_itself_is_a_cycle() -> None:
    with pytest.raises(SegmentError, match="segment cycle: 'Me' → 'Me'"):
        check_cycles("Me", parse('in segment "Me" or a = 1'), _resolve)


def test_an_edit_that_would_close_a_cycle_is_caught_before_it_is_saved() -> None:
    # Staff is being changed to refer to Loyal, which reaches Staff through VIP.
    with pytest.raises(SegmentError, match="'Staff' → 'Loyal' → 'VIP' → 'Staff'"):
        check_cycles("Staff", parse('in segment "Loyal"'), _resolve)


def test_dependencies_tell_what_a_change_can_affect() -> None:
    deps = dependencies(
        parse(
            'purchased where store = "Leeds" in last 90 days and total_spend > 200 and email.opened and '
            'city in ("Leeds") and not in segment "Staff" and subscribed to sms'
        )
    )
    assert deps.fields == {"total_spend", "city"}
    assert deps.events == {"order_completed"}
    assert deps.segments == {"Staff"}
    assert (deps.messages, deps.subscriptions, deps.location, deps.by_time) == (True, True, False, True)


@pytest.mark.parametrize(
    ("text", "by_time"),
    [
        ("a = 1", False),
        ('did "x"', False),
        ('did "x" between 2025-01-01 and 2025-02-01', False),
        ('did "x" in last 2 hours', True),
        ("email.clicked in last 3 days", True),
        ("d in next 3 days", True),
        ('last did "x" more than 3 days ago', True),
        ('first did "x" before 2025-01-01', False),
        ("within 3 km of (1, 2)", False),
    ],
)
def test_time_based_segments_are_flagged_for_the_refresher(text: str, by_time: bool) -> None:
    assert dependencies(parse(text)).by_time is by_time
