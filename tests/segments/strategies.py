"""Hypothesis strategies that build random, valid segment ASTs (every node kind, awkward names included)."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import strategies as st

from rapport.segments.ast import (
    ACTIONS,
    BUCKET_OPS,
    CHANNELS,
    COMPARE_OPS,
    COUNT_OPS,
    DATE_KINDS,
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

# Names that collide with keywords, aliases, engagement words, or need quoting, next to ordinary ones.
_AWKWARD = [
    "city",
    "total_spend",
    "propensity.purchase_30d",
    "first",
    "Not",
    "in",
    "did",
    "purchased",
    "email.opened",
    "store",
    "between",
    "a b",
    "tick`tock",
    'quote"d',
    "back\\slash",
    "new\nline",
    "ünïcødé",
    "2025-01-01",
    "-5",
]
names = st.one_of(st.sampled_from(_AWKWARD), st.text(min_size=1, max_size=10))
texts = st.text(max_size=10)
dates = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(texts, st.integers(-(10**20), 10**20), floats, st.booleans(), dates)
ordered_scalars = st.one_of(texts, st.integers(-(10**6), 10**6), floats, dates)


@st.composite
def compares(draw: st.DrawFn) -> Compare:
    """A comparison with a value that fits its operator."""
    field = draw(names)
    op: Any = draw(st.sampled_from(COMPARE_OPS))
    if op in ("in", "not in"):
        return Compare(field, op, tuple(draw(st.lists(scalars, min_size=1, max_size=4))))
    if op == "starts with":
        return Compare(field, op, draw(texts))
    if op in (">", ">=", "<", "<="):
        return Compare(field, op, draw(ordered_scalars))
    return Compare(field, op, draw(scalars))


is_sets = st.builds(IsSet, names, st.booleans())


@st.composite
def date_relatives(draw: st.DrawFn) -> DateRelative:
    """A date-relative condition (anniversary only where it applies)."""
    kind: Any = draw(st.sampled_from(DATE_KINDS))
    days = 0 if kind == "today" else draw(st.integers(0, 5000))
    anniversary = kind in ("today", "in next", "in last") and draw(st.booleans())
    return DateRelative(draw(names), kind, days, anniversary)


counts = st.builds(Count, st.sampled_from(COUNT_OPS), st.integers(0, 10_000))


@st.composite
def betweens(draw: st.DrawFn) -> Between:
    """A between window with its dates in order."""
    first, second = sorted([draw(dates), draw(dates)])
    return Between(first, second)


windows = st.one_of(
    st.just(Ever()),
    st.builds(InLast, st.integers(1, 36_500), st.sampled_from(["days", "hours"])),
    betweens(),
)
property_exprs = st.recursive(
    st.one_of(compares(), is_sets),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
        inner.map(Not),
    ),
    max_leaves=4,
)
wheres = st.one_of(st.none(), property_exprs)
events = st.one_of(
    st.sampled_from(["order_completed", "page_viewed", "did", "not"]), st.text(min_size=1, max_size=8)
)
dids = st.builds(Did, events, wheres, counts, windows)
event_times = st.builds(
    EventTime,
    st.sampled_from(["first", "last"]),
    events,
    st.sampled_from(["before", "after"]),
    st.one_of(dates, st.builds(DaysAgo, st.integers(0, 5000))),
    wheres,
)
engagements = st.builds(
    Engagement,
    st.sampled_from(ACTIONS),
    st.one_of(st.none(), st.sampled_from(CHANNELS)),
    st.one_of(st.none(), st.text(min_size=1, max_size=8)),
    counts,
    windows,
)
subscriptions = st.builds(
    Subscription,
    st.sampled_from(CHANNELS),
    st.sampled_from(["subscribed", "unsubscribed"]),
    st.one_of(st.none(), st.text(min_size=1, max_size=8)),
)
memberships = st.builds(InSegment, st.text(min_size=1, max_size=8))
points = st.builds(Point, st.floats(-90, 90), st.floats(-180, 180))
withins = st.builds(
    Within,
    st.floats(min_value=0, max_value=40_000, exclude_min=True),
    st.one_of(points, st.builds(Store, st.text(min_size=1, max_size=8))),
)
buckets = st.builds(
    RandomBucket,
    st.sampled_from(BUCKET_OPS),
    st.floats(0, 100),
    st.one_of(st.none(), st.text(min_size=1, max_size=8)),
)
conditions = st.one_of(
    compares(),
    is_sets,
    date_relatives(),
    dids,
    event_times,
    engagements,
    subscriptions,
    memberships,
    withins,
    buckets,
)


def _nest(inner: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.lists(inner, min_size=2, max_size=4).map(lambda items: And(tuple(items))),
        st.lists(inner, min_size=2, max_size=4).map(lambda items: Or(tuple(items))),
        inner.map(Not),
    )


segments = st.recursive(conditions, _nest, max_leaves=8)
