"""A plain-Python evaluator of segments over one profile held in memory: the oracle for the SQL compiler.

It is written to be obviously right rather than fast; every rule of the language reference
(docs/segment-language.md) is one small function here. Rules that SQL has to copy:

- a comparison on a missing trait or a value of another type is false (``not`` then makes it true);
- dates in comparisons are calendar dates: a timestamp counts by its UTC date;
- ``today`` is the date of ``now`` in the profile's timezone (UTC when unknown or invalid);
- event windows are instants: ``in last N days`` is ``now - N days < timestamp <= now``; ``between A and B``
  covers the UTC days A to B included;
- ``random bucket`` is ``bucket(seed, profile_id)`` below;
- ``subscribed to sms topic "offers"`` needs both the channel and the topic subscribed (an opt-out topic
  with no state of its own counts as subscribed); ``unsubscribed from`` a topic needs a no to either.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rapport.kit.clock import as_utc
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
    Scalar,
    Subscription,
    Window,
    Within,
)
from rapport.segments.catalog import Catalog, field_paths
from rapport.segments.errors import SegmentError

EARTH_RADIUS_KM = 6371.0088  # the IUGG mean radius


@dataclass(frozen=True, slots=True)
class EventFact:
    """One event of the profile: its name, timestamp (naive means UTC) and properties (nested JSON)."""

    name: str
    timestamp: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageFact:
    """One message engagement: ``action`` (sent, opened, ...) on ``channel`` at ``timestamp``."""

    channel: str
    action: str
    timestamp: datetime
    campaign: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileFacts:
    """Everything a segment can ask about one profile.

    ``traits`` holds traits, computed traits and scores by their catalogue names. ``subscriptions`` maps
    ``(channel, None)``, ``(channel, topic)`` and ``("", topic)`` (a topic on every channel, as the consent
    domain stores it) to a state: subscribed, unsubscribed, never_asked, pending.
    """

    profile_id: str
    traits: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[EventFact] = ()
    messages: Sequence[MessageFact] = ()
    subscriptions: Mapping[tuple[str, str | None], str] = field(default_factory=dict)
    segments: Collection[str] = frozenset()
    location: tuple[float, float] | None = None
    timezone: str | None = None


def evaluate(
    node: Node, profile: ProfileFacts, now: datetime, *, catalog: Catalog | None = None, seed: str = ""
) -> bool:
    """Tell whether ``profile`` matches segment ``node`` at ``now``.

    ``catalog`` places stores for ``within ... of store``; ``seed`` is the segment's bucket seed, used by
    ``random bucket`` conditions that do not name their own.
    """
    if now.tzinfo is None:
        raise SegmentError("now must be an aware datetime")
    return _Evaluator(profile, as_utc(now), catalog, seed).holds(node)


def bucket(seed: str, profile_id: str) -> float:
    """Return the profile's stable bucket in [0, 100): the first 4 bytes of sha256(seed:id) over 2**32."""
    digest = hashlib.sha256(f"{seed}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") * 100 / 2**32


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Return the great-circle (haversine) distance between two (lat, lon) points in kilometres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def timezone_of(name: str | None) -> ZoneInfo:
    """Return the named timezone, or UTC when the name is missing or unknown."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def calendar_date(value: object) -> date | None:
    """Return the calendar date of a trait value (date, timestamp or ISO string); timestamps by UTC date."""
    if isinstance(value, datetime):
        return as_utc(value).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            return calendar_date(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """Return the value at a dotted ``path`` in nested mappings (None when any step is missing)."""
    value: Any = data
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


# ---- comparisons -----------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _comparable(actual: object, literal: Scalar) -> tuple[Any, Any] | None:
    """Return the two sides as values Python may compare, or None when their types do not match."""
    if isinstance(literal, bool):
        return (actual, literal) if isinstance(actual, bool) else None
    if _is_number(literal):
        return (actual, literal) if _is_number(actual) else None
    if isinstance(literal, date):
        day = calendar_date(actual)
        return (day, literal) if day is not None else None
    return (actual, literal) if isinstance(actual, str) else None


def _equal(actual: object, literal: Scalar) -> bool:
    pair = _comparable(actual, literal)
    return pair is not None and bool(pair[0] == pair[1])


def compare(actual: object, op: str, value: Scalar | tuple[Scalar, ...]) -> bool:
    """Apply one comparison to a trait or property value; missing values and type mismatches are false."""
    if actual is None:
        return False
    if op in ("in", "not in"):
        assert isinstance(value, tuple)
        if isinstance(actual, list):  # a list field: does it share an element with the values?
            overlap = any(_equal(element, literal) for element in actual for literal in value)
            return overlap if op == "in" else not overlap
        if op == "in":  # x in (a, b) is x = a or x = b
            return any(compare(actual, "=", literal) for literal in value)
        return all(compare(actual, "!=", literal) for literal in value)  # x != a and x != b
    assert not isinstance(value, tuple)
    if op == "contains":
        if isinstance(actual, list):
            return any(_equal(element, value) for element in actual)
        return isinstance(actual, str) and isinstance(value, str) and value in actual
    if op == "starts with":
        return isinstance(actual, str) and isinstance(value, str) and actual.startswith(value)
    pair = _comparable(actual, value)
    if pair is None:
        return False
    left, right = pair
    results = {
        "=": lambda: left == right,
        "!=": lambda: left != right,
        ">": lambda: left > right,
        ">=": lambda: left >= right,
        "<": lambda: left < right,
        "<=": lambda: left <= right,
    }
    return bool(results[op]())


def _anniversary(day: date, year: int) -> date:
    """Return ``day``'s anniversary in ``year``; 29 February falls on 28 February in other years."""
    try:
        return day.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def date_relative(day: date, kind: str, days: int, anniversary: bool, today: date) -> bool:
    """Apply a date-relative condition to a calendar date, given today's date in the profile's timezone."""
    if anniversary:
        span = {"today": range(0, 1), "in next": range(0, days + 1), "in last": range(-days, 1)}[kind]
        for offset in span:
            candidate = today + timedelta(days=offset)
            if _anniversary(day, candidate.year) == candidate:
                return True
        return False
    if kind == "today":
        return day == today
    if kind == "in next":
        return today <= day <= today + timedelta(days=days)
    if kind == "in last":
        return today - timedelta(days=days) <= day <= today
    if kind == "more than ago":
        return day < today - timedelta(days=days)
    assert kind == "less than ago"
    return today - timedelta(days=days) < day <= today


def in_window(timestamp: datetime, window: Window, now: datetime) -> bool:
    """Tell whether an instant lies within an event window at ``now``."""
    if isinstance(window, Ever):
        return True
    if isinstance(window, InLast):
        length = timedelta(days=window.amount) if window.unit == "days" else timedelta(hours=window.amount)
        return now - length < as_utc(timestamp) <= now
    assert isinstance(window, Between)
    return window.start <= as_utc(timestamp).date() <= window.end


def count_matches(n: int, count: Count) -> bool:
    """Tell whether ``n`` matching events satisfy ``count``."""
    if count.op == "at least":
        return n >= count.n
    if count.op == "at most":
        return n <= count.n
    return n == count.n


class _Evaluator:
    def __init__(self, profile: ProfileFacts, now: datetime, catalog: Catalog | None, seed: str) -> None:
        self.profile = profile
        self.now = now
        self.catalog = catalog
        self.seed = seed
        self.today = now.astimezone(timezone_of(profile.timezone)).date()

    def holds(self, node: Node) -> bool:
        if isinstance(node, And):
            return all(self.holds(item) for item in node.items)
        if isinstance(node, Or):
            return any(self.holds(item) for item in node.items)
        if isinstance(node, Not):
            return not self.holds(node.item)
        if isinstance(node, Compare):
            return compare(self.field(node.field), node.op, node.value)
        if isinstance(node, IsSet):
            return (self.field(node.field) is not None) == node.is_set
        if isinstance(node, DateRelative):
            day = calendar_date(self.field(node.field))
            return day is not None and date_relative(day, node.kind, node.days, node.anniversary, self.today)
        if isinstance(node, Did):
            matching = [
                e
                for e in self.matching_events(node.event, node.where)
                if in_window(e.timestamp, node.window, self.now)
            ]
            return count_matches(len(matching), node.count)
        if isinstance(node, EventTime):
            return self.event_time(node)
        if isinstance(node, Engagement):
            return count_matches(sum(1 for m in self.profile.messages if self.engaged(node, m)), node.count)
        if isinstance(node, Subscription):
            return self.subscription(node)
        if isinstance(node, InSegment):
            return node.segment in self.profile.segments
        if isinstance(node, Within):
            return self.within(node)
        if isinstance(node, RandomBucket):
            return compare(
                bucket(node.seed if node.seed is not None else self.seed, self.profile.profile_id),
                node.op,
                node.percent,
            )
        raise TypeError(f"not a segment node: {node!r}")

    def field(self, name: str) -> Any:
        """The profile's value of field ``name``: a whole key, or a path into nested objects."""
        for keys in field_paths(name, self.catalog):
            value: Any = self.profile.traits
            for key in keys:
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is not None:
                return value
        return None

    def matching_events(self, name: str, where: Node | None) -> list[EventFact]:
        return [
            e
            for e in self.profile.events
            if e.name == name and (where is None or self.property_holds(where, e))
        ]

    def property_holds(self, node: Node, event: EventFact) -> bool:
        if isinstance(node, And):
            return all(self.property_holds(item, event) for item in node.items)
        if isinstance(node, Or):
            return any(self.property_holds(item, event) for item in node.items)
        if isinstance(node, Not):
            return not self.property_holds(node.item, event)
        if isinstance(node, Compare):
            return compare(lookup(event.properties, node.field), node.op, node.value)
        assert isinstance(node, IsSet)
        return (lookup(event.properties, node.field) is not None) == node.is_set

    def event_time(self, node: EventTime) -> bool:
        times = [as_utc(e.timestamp) for e in self.matching_events(node.event, node.where)]
        if not times:
            return False
        moment = min(times) if node.which == "first" else max(times)
        if isinstance(node.point, DaysAgo):
            point = self.now - timedelta(days=node.point.days)
            return moment < point if node.op == "before" else moment > point
        day = as_utc(moment).date()
        return day < node.point if node.op == "before" else day > node.point

    def engaged(self, node: Engagement, message: MessageFact) -> bool:
        return (
            message.action == node.action
            and (node.channel is None or message.channel == node.channel)
            and (node.campaign is None or message.campaign == node.campaign)
            and in_window(message.timestamp, node.window, self.now)
        )

    def subscription(self, node: Subscription) -> bool:
        channel = self.profile.subscriptions.get((node.channel, None))
        if node.topic is None:
            return channel == node.state
        topic = self.profile.subscriptions.get((node.channel, node.topic))
        if topic is None:  # a topic row for every channel (channel "") holds where the channel has none
            topic = self.profile.subscriptions.get(("", node.topic))
        if topic is None and self.catalog is not None and node.topic in self.catalog.opt_out_topics:
            topic = "subscribed"
        if node.state == "subscribed":
            return channel == "subscribed" and topic == "subscribed"
        return channel == "unsubscribed" or topic == "unsubscribed"

    def within(self, node: Within) -> bool:
        if self.profile.location is None:
            return False
        target = node.target
        if isinstance(target, Point):
            place = (target.lat, target.lon)
        else:
            stores = self.catalog.stores if self.catalog is not None else None
            if stores is None or target.name not in stores:
                raise SegmentError(f"unknown store {target.name!r}: the catalogue does not place it")
            place = stores[target.name]
        return distance_km(self.profile.location, place) <= node.km
