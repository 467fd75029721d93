"""The JSON form of a segment: ``{"version": 1, "root": {...}}``, validated on the way in.

Every node is an object with a ``type``; literal dates are ``{"date": "YYYY-MM-DD"}`` so they stay apart from
strings. ``to_json`` writes every key; ``from_json`` accepts documents that leave out keys with defaults and
rejects anything else with a ``SegmentError`` naming the path (``root.items[2].count.n``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

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
    Store,
    Subscription,
    TimePoint,
    Window,
    Within,
)
from rapport.segments.errors import SegmentError

VERSION = 1
JSON = dict[str, Any]


def to_json(node: Node) -> JSON:
    """Return the versioned JSON document of ``node``."""
    return {"version": VERSION, "root": encode(node)}


def from_json(document: object) -> Node:
    """Decode and validate a versioned JSON document; raise ``SegmentError`` naming the bad path."""
    if not isinstance(document, Mapping):
        raise SegmentError("a segment document must be an object", path="$")
    version = document.get("version")
    if version != VERSION:
        raise SegmentError(f"unsupported segment version {version!r}; expected {VERSION}", path="version")
    extra = set(document) - {"version", "root"}
    if extra:
        raise SegmentError(f"unexpected key {sorted(extra)[0]!r}", path="$")
    if "root" not in document:
        raise SegmentError("missing key 'root'", path="$")
    return decode(document["root"], "root")


# ---- encoding ----------------------------------------------------------------------------------------------


def encode_scalar(value: Scalar) -> Any:
    """Encode a literal: dates become ``{"date": ...}``, everything else is native JSON."""
    return {"date": value.isoformat()} if isinstance(value, date) else value


def _count(count: Count) -> JSON:
    return {"op": count.op, "n": count.n}


def _window(window: Window) -> JSON:
    if isinstance(window, InLast):
        return {"kind": "in last", "amount": window.amount, "unit": window.unit}
    if isinstance(window, Between):
        return {"kind": "between", "start": window.start.isoformat(), "end": window.end.isoformat()}
    return {"kind": "ever"}


def _point(point: TimePoint) -> JSON:
    return {"days_ago": point.days} if isinstance(point, DaysAgo) else {"date": point.isoformat()}


def encode(node: Node) -> JSON:
    """Encode one node (and its children) as a JSON object."""
    if isinstance(node, And | Or):
        return {"type": "and" if isinstance(node, And) else "or", "items": [encode(i) for i in node.items]}
    if isinstance(node, Not):
        return {"type": "not", "item": encode(node.item)}
    if isinstance(node, Compare):
        value = (
            [encode_scalar(v) for v in node.value]
            if isinstance(node.value, tuple)
            else encode_scalar(node.value)
        )
        return {"type": "compare", "field": node.field, "op": node.op, "value": value}
    if isinstance(node, IsSet):
        return {"type": "is_set", "field": node.field, "is_set": node.is_set}
    if isinstance(node, DateRelative):
        return {
            "type": "date_relative",
            "field": node.field,
            "kind": node.kind,
            "days": node.days,
            "anniversary": node.anniversary,
        }
    if isinstance(node, Did):
        where = encode(node.where) if node.where is not None else None
        return {
            "type": "did",
            "event": node.event,
            "where": where,
            "count": _count(node.count),
            "window": _window(node.window),
        }
    if isinstance(node, EventTime):
        return {
            "type": "event_time",
            "which": node.which,
            "event": node.event,
            "where": encode(node.where) if node.where is not None else None,
            "op": node.op,
            "point": _point(node.point),
        }
    if isinstance(node, Engagement):
        return {
            "type": "engagement",
            "channel": node.channel,
            "action": node.action,
            "campaign": node.campaign,
            "count": _count(node.count),
            "window": _window(node.window),
        }
    if isinstance(node, Subscription):
        return {"type": "subscription", "channel": node.channel, "state": node.state, "topic": node.topic}
    if isinstance(node, InSegment):
        return {"type": "in_segment", "segment": node.segment}
    if isinstance(node, Within):
        target = node.target
        place = (
            {"store": target.name} if isinstance(target, Store) else {"lat": target.lat, "lon": target.lon}
        )
        return {"type": "within", "km": node.km, "target": place}
    if isinstance(node, RandomBucket):
        return {"type": "random_bucket", "op": node.op, "percent": node.percent, "seed": node.seed}
    raise TypeError(f"not a segment node: {node!r}")


# ---- decoding ----------------------------------------------------------------------------------------------

_MISSING = object()


class _Object:
    """A JSON object being decoded: typed access to its keys, errors that name the path."""

    def __init__(self, data: object, path: str, allowed: set[str]) -> None:
        if not isinstance(data, Mapping):
            raise SegmentError("expected an object", path=path)
        extra = set(data) - allowed
        if extra:
            raise SegmentError(f"unexpected key {sorted(map(str, extra))[0]!r}", path=path)
        self.data = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise SegmentError(f"missing key {key!r}", path=self.path)
        return default

    def text(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key, default)
        if value is not None and not isinstance(value, str):
            raise SegmentError("expected a string", path=self.at(key))
        return value

    def date(self, key: str) -> date:
        return _date(self.get(key), self.at(key))


def _date(value: object, path: str) -> date:
    if not isinstance(value, str):
        raise SegmentError("expected a date string YYYY-MM-DD", path=path)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SegmentError(f"{value!r} is not a date YYYY-MM-DD", path=path) from None


def decode_scalar(value: object, path: str) -> Scalar:
    """Decode a literal written by ``encode_scalar``."""
    if isinstance(value, Mapping):
        obj = _Object(value, path, {"date"})
        return obj.date("date")
    if isinstance(value, str | int | float | bool):
        return value
    raise SegmentError('expected a string, number, boolean or {"date": ...}', path=path)


def _decode_count(value: object, path: str) -> Count:
    obj = _Object(value, path, {"op", "n"})
    return _build(path, Count, obj.get("op", "at least"), obj.get("n", 1))


def _decode_window(value: object, path: str) -> Window:
    obj = _Object(value, path, {"kind", "amount", "unit", "start", "end"})
    kind = obj.get("kind")
    if kind == "ever":
        return Ever()
    if kind == "in last":
        return _build(path, InLast, obj.get("amount"), obj.get("unit", "days"))
    if kind == "between":
        return _build(path, Between, obj.date("start"), obj.date("end"))
    raise SegmentError("window kind must be ever, in last or between", path=obj.at("kind"))


def _decode_point(value: object, path: str) -> TimePoint:
    if isinstance(value, Mapping) and "days_ago" in value:
        return _build(path, DaysAgo, _Object(value, path, {"days_ago"}).get("days_ago"))
    return _Object(value, path, {"date"}).date("date")


def _decode_where(value: object, path: str) -> Node | None:
    return None if value is None else decode(value, path)


def _build(path: str, make: Callable[..., Any], *args: Any) -> Any:
    try:
        return make(*args)
    except SegmentError as error:
        raise error.at_path(path) from None


def decode(data: object, path: str = "root") -> Node:
    """Decode one node written by ``encode``; ``path`` names it in errors."""
    if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
        raise SegmentError("expected a condition object with a 'type'", path=path)
    kind = data["type"]
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise SegmentError(f"unknown condition type {kind!r}", path=f"{path}.type")
    keys, make = decoder
    obj = _Object(data, path, {"type", *keys})
    return make(obj)


def _items(obj: _Object) -> list[Node]:
    items = obj.get("items")
    if not isinstance(items, list):
        raise SegmentError("expected a list of conditions", path=obj.at("items"))
    return [decode(item, f"{obj.path}.items[{i}]") for i, item in enumerate(items)]


def _compare(obj: _Object) -> Compare:
    raw = obj.get("value")
    if isinstance(raw, list):
        value: Any = tuple(decode_scalar(v, f"{obj.at('value')}[{i}]") for i, v in enumerate(raw))
    else:
        value = decode_scalar(raw, obj.at("value"))
    return _build(obj.path, Compare, obj.text("field"), obj.get("op"), value)


def _within(obj: _Object) -> Within:
    raw = obj.get("target")
    path = obj.at("target")
    if isinstance(raw, Mapping) and "store" in raw:
        target: Store | Point = _build(path, Store, _Object(raw, path, {"store"}).text("store"))
    else:
        place = _Object(raw, path, {"lat", "lon"})
        target = _build(path, Point, place.get("lat"), place.get("lon"))
    return _build(obj.path, Within, obj.get("km"), target)


_DECODERS: dict[str, tuple[set[str], Callable[[_Object], Node]]] = {
    "and": ({"items"}, lambda o: _build(o.path, And, tuple(_items(o)))),
    "or": ({"items"}, lambda o: _build(o.path, Or, tuple(_items(o)))),
    "not": ({"item"}, lambda o: Not(decode(o.get("item"), o.at("item")))),
    "compare": ({"field", "op", "value"}, _compare),
    "is_set": ({"field", "is_set"}, lambda o: _build(o.path, IsSet, o.text("field"), o.get("is_set", True))),
    "date_relative": (
        {"field", "kind", "days", "anniversary"},
        lambda o: _build(
            o.path,
            DateRelative,
            o.text("field"),
            o.get("kind"),
            o.get("days", 0),
            o.get("anniversary", False),
        ),
    ),
    "did": (
        {"event", "where", "count", "window"},
        lambda o: _build(
            o.path,
            Did,
            o.text("event"),
            _decode_where(o.get("where", None), o.at("where")),
            _decode_count(o.get("count", {}), o.at("count")),
            _decode_window(o.get("window", {"kind": "ever"}), o.at("window")),
        ),
    ),
    "event_time": (
        {"which", "event", "where", "op", "point"},
        lambda o: _build(
            o.path,
            EventTime,
            o.get("which"),
            o.text("event"),
            o.get("op"),
            _decode_point(o.get("point"), o.at("point")),
            _decode_where(o.get("where", None), o.at("where")),
        ),
    ),
    "engagement": (
        {"channel", "action", "campaign", "count", "window"},
        lambda o: _build(
            o.path,
            Engagement,
            o.get("action"),
            o.get("channel", None),
            o.text("campaign", None),
            _decode_count(o.get("count", {}), o.at("count")),
            _decode_window(o.get("window", {"kind": "ever"}), o.at("window")),
        ),
    ),
    "subscription": (
        {"channel", "state", "topic"},
        lambda o: _build(
            o.path, Subscription, o.get("channel"), o.get("state", "subscribed"), o.text("topic", None)
        ),
    ),
    "in_segment": ({"segment"}, lambda o: _build(o.path, InSegment, o.text("segment"))),
    "within": ({"km", "target"}, _within),
    "random_bucket": (
        {"op", "percent", "seed"},
        lambda o: _build(o.path, RandomBucket, o.get("op"), o.get("percent"), o.text("seed", None)),
    ),
}
