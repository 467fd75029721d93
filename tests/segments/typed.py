"""Hypothesis strategies for segments that fit a catalogue and for profiles they can match.

Meant for the SQL compiler's tests as much as for ours: values come from small pools so that random
segments and random profiles actually meet (a random ``city = "x"`` against random strings never would).
Awkward data on purpose: missing traits, traits of the wrong type, events at window edges, several
timezones, 29 February birthdays.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from rapport.segments import Catalog, EventFact, MessageFact, ProfileFacts
from rapport.segments.ast import (
    ACTIONS,
    BUCKET_OPS,
    CHANNELS,
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

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
STORES = {"Leeds": (53.7966, -1.5424), "York": (53.9576, -1.0803), "Hull": (53.7457, -0.3367)}
CATALOG = Catalog(
    traits={
        "city": "string",
        "age": "number",
        "is_vip": "boolean",
        "signup_date": "date",
        "tags": "list",
        "address.city": "string",  # nested: traits["address"]["city"]
    },
    computed={"total_spend": "number", "birthday": "date"},
    scores={"churn_danger": "number", "rfm_segment": "string"},
    events={"order_completed", "page_viewed"},
    stores=STORES,
    segments={"Staff", "VIP"},
    topics={"offers", "news"},
    campaigns={"Spring sale", "Winter"},
    opt_out_topics={"news"},
)
TIMEZONES = ["UTC", "Europe/London", "Pacific/Auckland", "America/Los_Angeles", "Asia/Kolkata"]

_strings = st.sampled_from(["Leeds", "York", "Hull", "leeds", "Le", "", "champions", "loyal", "at risk"])
_numbers = st.one_of(st.integers(-2, 400), st.sampled_from([0.5, 99.5, 200.0, 250.25]))
_dates = st.integers(-800, 400).map(lambda days: TODAY + timedelta(days=days))
_anniversaries = st.sampled_from([date(2000, 2, 29), date(1990, 1, 15), date(1985, 12, 31), date(1970, 1, 1)])
_tag = st.sampled_from(["vip", "newsletter", "staff", "b2b"])
_by_type = {"string": _strings, "number": _numbers, "boolean": st.booleans(), "date": _dates}
_fields = {
    "city": "string",
    "address.city": "string",
    "age": "number",
    "is_vip": "boolean",
    "signup_date": "date",
    "tags": "list",
    "total_spend": "number",
    "birthday": "date",
    "churn_danger": "number",
    "rfm_segment": "string",
}
_OPS = {
    "string": ["=", "!=", ">", ">=", "<", "<=", "contains", "starts with", "in", "not in"],
    "number": ["=", "!=", ">", ">=", "<", "<=", "in", "not in"],
    "boolean": ["=", "!="],
    "date": ["=", "!=", ">", ">=", "<", "<=", "in", "not in"],
    "list": ["contains", "in", "not in"],
}


@st.composite
def typed_compares(draw: st.DrawFn) -> Compare:
    """A comparison of a catalogue field with values of its type."""
    field = draw(st.sampled_from(sorted(_fields)))
    kind = _fields[field]
    op: Any = draw(st.sampled_from(_OPS[kind]))
    values = _tag if kind == "list" else _by_type[kind]
    if op in ("in", "not in"):
        return Compare(field, op, tuple(draw(st.lists(values, min_size=1, max_size=3))))
    return Compare(field, op, draw(values))


@st.composite
def typed_date_relatives(draw: st.DrawFn) -> DateRelative:
    """A date-relative condition on a date field."""
    kind: Any = draw(st.sampled_from(DATE_KINDS))
    days = 0 if kind == "today" else draw(st.integers(0, 400))
    field = draw(st.sampled_from(["signup_date", "birthday"]))
    recurring = kind in ("today", "in next", "in last")
    anniversary = recurring and (field == "birthday" or draw(st.booleans()))  # birthdays must say anniversary
    return DateRelative(field, kind, days, anniversary)


_property_compares = st.one_of(
    st.builds(Compare, st.just("amount"), st.sampled_from([">", ">=", "<", "<=", "=", "!="]), _numbers),
    st.builds(Compare, st.just("store"), st.sampled_from(["=", "!="]), _strings),
    st.builds(
        Compare, st.just("store"), st.just("in"), st.lists(_strings, min_size=1, max_size=2).map(tuple)
    ),
    st.builds(
        Compare, st.just("url"), st.sampled_from(["contains", "starts with"]), st.sampled_from(["/sale", "/"])
    ),
    st.builds(Compare, st.just("product.category"), st.just("="), st.sampled_from(["shoes", "hats"])),
    st.builds(IsSet, st.sampled_from(["store", "product.category"]), st.booleans()),
)
_wheres = st.one_of(
    st.none(),
    _property_compares,
    st.lists(_property_compares, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
    st.lists(_property_compares, min_size=2, max_size=2).map(lambda items: Or(tuple(items))),
    _property_compares.map(Not),
)
_counts = st.builds(Count, st.sampled_from(COUNT_OPS), st.integers(0, 3))


@st.composite
def _betweens(draw: st.DrawFn) -> Between:
    first, second = sorted([draw(_dates), draw(_dates)])
    return Between(first, second)


_windows = st.one_of(
    st.just(Ever()),
    st.builds(InLast, st.sampled_from([1, 7, 30, 90, 365]), st.just("days")),
    st.builds(InLast, st.sampled_from([1, 24, 48]), st.just("hours")),
    _betweens(),
)
_events = st.sampled_from(["order_completed", "page_viewed"])
typed_conditions = st.one_of(
    typed_compares(),
    st.builds(IsSet, st.sampled_from(sorted(_fields)), st.booleans()),
    typed_date_relatives(),
    st.builds(Did, _events, _wheres, _counts, _windows),
    st.builds(
        EventTime,
        st.sampled_from(["first", "last"]),
        _events,
        st.sampled_from(["before", "after"]),
        st.one_of(_dates, st.builds(DaysAgo, st.sampled_from([0, 1, 7, 30, 90]))),
        _wheres,
    ),
    st.builds(
        Engagement,
        st.sampled_from(ACTIONS[:4]),
        st.one_of(st.none(), st.sampled_from(CHANNELS[:3])),
        st.one_of(st.none(), st.sampled_from(["Spring sale", "Winter"])),
        _counts,
        _windows,
    ),
    st.builds(
        Subscription,
        st.sampled_from(CHANNELS[:3]),
        st.sampled_from(["subscribed", "unsubscribed"]),
        st.one_of(st.none(), st.sampled_from(["offers", "news"])),
    ),
    st.builds(InSegment, st.sampled_from(["Staff", "VIP"])),
    st.builds(
        Within,
        st.sampled_from([0.5, 1, 5, 40, 100]),
        st.one_of(
            st.builds(Store, st.sampled_from(sorted(STORES))),
            st.builds(Point, st.floats(53.5, 54.0), st.floats(-2.0, -0.5)),
        ),
    ),
    st.builds(RandomBucket, st.sampled_from(BUCKET_OPS), st.sampled_from([0, 10, 50, 90, 100]), st.none()),
)


def _nest(inner: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
        inner.map(Not),
    )


typed_segments = st.recursive(typed_conditions, _nest, max_leaves=6)

# ---- profiles ----------------------------------------------------------------------------------------------

_offsets = st.one_of(
    st.integers(-400 * 24 * 3600, 3600).map(lambda s: timedelta(seconds=s)),
    # exactly on the edges of the windows above
    st.sampled_from([0, 1, 7, 30, 90, 365]).map(lambda d: timedelta(days=-d)),
    st.sampled_from([1, 24, 48]).map(lambda h: timedelta(hours=-h)),
)
_moments = _offsets.map(lambda offset: NOW + offset)


def _trait_value(kind: str) -> st.SearchStrategy[object]:
    if kind == "list":
        return st.lists(_tag, max_size=3)
    typed: st.SearchStrategy[object]
    if kind == "date":
        typed = st.one_of(_dates.map(date.isoformat), _anniversaries.map(date.isoformat), _moments)
    else:
        typed = _by_type[kind]
    return st.one_of(typed, typed, typed, st.none(), st.sampled_from(["oops", 7, True]))


_ABSENT = object()
_trait_maps = st.fixed_dictionaries(
    {
        name: st.one_of(_trait_value(kind), _trait_value(kind), st.just(_ABSENT))
        for name, kind in _fields.items()
    }
).map(lambda traits: _nest({name: value for name, value in traits.items() if value is not _ABSENT}))


def _nest(traits: dict[str, object]) -> dict[str, object]:
    """Dotted trait names live in nested objects (``address.city`` is ``{"address": {"city": …}}``)."""
    out: dict[str, object] = {}
    for name, value in traits.items():
        if (
            "." in name
            and CATALOG.field_info(name) is not None
            and CATALOG.field_info(name).source == "trait"
        ):
            head, _, rest = name.partition(".")
            inner = out.setdefault(head, {})
            assert isinstance(inner, dict)
            inner[rest] = value
        else:
            out[name] = value
    return out


_properties = st.fixed_dictionaries(
    {},
    optional={
        "amount": _numbers,
        "store": _strings,
        "url": st.sampled_from(["/sale/shoes", "/home", "/sale"]),
        "product": st.fixed_dictionaries({}, optional={"category": st.sampled_from(["shoes", "hats"])}),
    },
)
_event_lists = st.lists(st.builds(EventFact, _events, _moments, _properties), max_size=8)
_message_lists = st.lists(
    st.builds(
        MessageFact,
        st.sampled_from(CHANNELS[:3]),
        st.sampled_from(ACTIONS[:4]),
        _moments,
        st.one_of(st.none(), st.sampled_from(["Spring sale", "Winter"])),
    ),
    max_size=6,
)
_subscription_maps = st.fixed_dictionaries(
    {
        (channel, topic): st.sampled_from(["subscribed", "unsubscribed", "never_asked", "pending", "absent"])
        for channel in (*CHANNELS[:3], "")  # "": a topic row for every channel
        for topic in (None, "offers", "news")
        if channel or topic
    }
).map(lambda states: {key: state for key, state in states.items() if state != "absent"})
_points = st.tuples(st.floats(53.5, 54.0), st.floats(-2.0, -0.5))
_locations = st.one_of(st.none(), _points, _points, _points)
_profile_ids = st.text("abcdef0123456789", min_size=1, max_size=8)
_memberships = st.frozensets(st.sampled_from(["Staff", "VIP"]))
_timezones = st.sampled_from([*TIMEZONES, None])


@st.composite
def profiles(draw: st.DrawFn) -> ProfileFacts:
    """A profile whose traits, events, messages and consent the typed segments can meet."""
    return ProfileFacts(
        profile_id=draw(_profile_ids),
        traits=draw(_trait_maps),
        events=draw(_event_lists),
        messages=draw(_message_lists),
        subscriptions=draw(_subscription_maps),
        segments=draw(_memberships),
        location=draw(_locations),
        timezone=draw(_timezones),
    )
