"""Computed traits, the pure part: definitions, property paths, conditions and the fold over events.

A definition aggregates one profile's events of one name (``"*"``: any event; ``"$purchase"``: the
workspace's purchase events), optionally filtered by conditions, over all time or the last N days. The
same fold (:class:`Accumulator`) serves the incremental update, the full recompute and the read-time
evaluation of windowed traits, so the three agree by construction; docs/computed-traits.md is the reference.

Example::

    spec = TraitSpec(name="spend_90d", event="$purchase", aggregation="sum", property="$value", window_days=90)
    acc = Accumulator.empty(spec.aggregation)
    for row in rows:                       # EventView rows ordered by (timestamp, id)
        if spec.accepts(row, purchase):
            acc.add(row, spec.value_of(row, purchase))
    acc.value(now)
"""

from __future__ import annotations

import builtins
import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rapport.errors import ValidationFailed
from rapport.kit.clock import as_utc

AGGREGATIONS: tuple[str, ...] = (
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first_at",
    "last_at",
    "first_value",
    "last_value",
    "most_frequent",
    "distinct_count",
    "days_since_first",
    "days_since_last",
)
#: Aggregations that need a property.
NEEDS_PROPERTY = frozenset(
    {"sum", "avg", "min", "max", "first_value", "last_value", "most_frequent", "distinct_count"}
)
NUMERIC = frozenset({"sum", "avg", "min", "max"})
#: Aggregations whose value moves with the clock: always evaluated at read time.
CLOCK_DEPENDENT = frozenset({"days_since_first", "days_since_last"})
OPERATORS: tuple[str, ...] = ("=", "!=", ">", ">=", "<", "<=", "in", "contains")
#: Event columns a property path may name directly; anything else is under ``properties``.
COLUMNS = frozenset({"event", "type", "channel"})
ANY_EVENT = "*"
PURCHASE = "$purchase"
PURCHASE_VALUE = "$value"
#: Bounds of the incremental state; past them the trait is recomputed from the events of that profile.
MAX_COUNTS = 256
MAX_DISTINCT = 1000
DEFAULT_PURCHASE_EVENTS: tuple[str, ...] = ("order_completed", "Order Completed")
DEFAULT_VALUE_PROPERTY = "total"
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True, slots=True)
class PurchaseSettings:
    """Which events are purchases and which property holds their value (workspace setting ``purchases``)."""

    events: tuple[str, ...] = DEFAULT_PURCHASE_EVENTS
    value_property: str = DEFAULT_VALUE_PROPERTY

    @staticmethod
    def from_settings(settings: Mapping[str, Any] | None) -> PurchaseSettings:
        """Read ``settings["purchases"] = {"events": [...], "value_property": "total"}`` with defaults."""
        raw = (settings or {}).get("purchases") or {}
        events = raw.get("events") if isinstance(raw, Mapping) else None
        prop = raw.get("value_property") if isinstance(raw, Mapping) else None
        return PurchaseSettings(
            events=tuple(str(e) for e in events)
            if isinstance(events, list) and events
            else DEFAULT_PURCHASE_EVENTS,
            value_property=str(prop) if isinstance(prop, str) and prop else DEFAULT_VALUE_PROPERTY,
        )


@dataclass(frozen=True, slots=True)
class EventView:
    """The columns of one event the fold looks at."""

    id: int
    profile_id: int | None
    event: str | None
    type: str
    channel: str
    timestamp: datetime
    properties: Mapping[str, Any]
    context: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Condition:
    """``{property, op, value}``: compare one property of the event with a literal."""

    property: str
    op: str
    value: Any

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape stored in ``ComputedTrait.conditions``."""
        return {"property": self.property, "op": self.op, "value": self.value}


@functools.lru_cache(maxsize=4096)
def path_parts(path: str) -> tuple[str, tuple[str, ...]]:
    """Split a property path into (where, keys): ``("column", ("channel",))``, ``("context", ("a",))`` or
    ``("properties", ("total",))``; a leading ``properties.`` is optional."""
    if path in COLUMNS:
        return "column", (path,)
    parts = tuple(p for p in path.split("."))
    if not path or any(not p for p in parts):
        raise ValidationFailed(f"invalid property path {path!r}")
    if parts[0] == "context" and len(parts) > 1:
        return "context", parts[1:]
    if parts[0] == "properties" and len(parts) > 1:
        return "properties", parts[1:]
    return "properties", parts


def _dig(bag: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(bag, Mapping):
            return None
        bag = bag.get(key)
    return bag


def extract(row: EventView, path: str) -> Any:
    """Return the value at ``path`` in the event (None when missing)."""
    where, keys = path_parts(path)
    if where == "column":
        return getattr(row, keys[0])
    return _dig(row.context if where == "context" else row.properties, keys)


def is_number(value: Any) -> bool:
    """Tell whether a JSON value is a number (booleans are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def as_text(value: Any) -> str | None:
    """The text form of a scalar, the one the SQL side compares (``true``/``false`` for booleans)."""
    if value is None or isinstance(value, Mapping | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def condition_holds(cond: Condition, actual: Any) -> bool:
    """Evaluate one condition; ``!=`` holds for a missing value, every other operator needs one."""
    want = cond.value
    if type(actual) is str and type(want) is str and cond.op in ("=", "!="):
        return (actual == want) == (cond.op == "=")  # the common case, without the general conversions
    if cond.op == "!=":
        if actual is None:
            return True
        if is_number(want):
            return not (is_number(actual) and actual == want)
        return as_text(actual) != as_text(want)
    if actual is None:
        return False
    if cond.op == "in":
        texts = {as_text(v) for v in want}
        return as_text(actual) in texts
    if cond.op == "contains":
        text = as_text(actual)
        return text is not None and str(want) in text
    if is_number(want):
        if not is_number(actual):
            return False
        a, b = float(actual), float(want)
    else:
        ta, tb = as_text(actual), as_text(want)
        if ta is None or tb is None:
            return False
        a2, b2 = ta, tb
        return _compare(cond.op, a2, b2)
    return _compare(cond.op, a, b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "=":
        return bool(a == b)
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    if op == "<":
        return bool(a < b)
    return bool(a <= b)


@dataclass(frozen=True, slots=True)
class TraitSpec:
    """A validated computed-trait definition (the pure twin of the ``ComputedTrait`` row)."""

    name: str
    event: str
    aggregation: str
    property: str | None = None
    conditions: tuple[Condition, ...] = ()
    window_days: int | None = None
    workspace_id: int = 0

    @builtins.property
    def live(self) -> bool:
        """Tell whether the value is evaluated at read time (windowed or clock-dependent)."""
        return self.window_days is not None or self.aggregation in CLOCK_DEPENDENT

    def reads_context(self) -> bool:
        """Tell whether the property or a condition reads ``context`` (so the fold must load it)."""
        paths = [c.property for c in self.conditions] + ([self.property] if self.property else [])
        return any(p != PURCHASE_VALUE and path_parts(p)[0] == "context" for p in paths)

    def event_names(self, purchase: PurchaseSettings) -> tuple[str, ...] | None:
        """Return the event names this trait reads (None: any event)."""
        if self.event == ANY_EVENT:
            return None
        if self.event == PURCHASE:
            return purchase.events
        return (self.event,)

    def property_path(self, purchase: PurchaseSettings) -> str | None:
        """Return the property path with ``$value`` resolved to the purchase value property."""
        if self.property == PURCHASE_VALUE:
            return purchase.value_property
        return self.property

    def accepts(self, row: EventView, purchase: PurchaseSettings, now: datetime | None = None) -> bool:
        """Tell whether an event counts for this trait (name, conditions and, given ``now``, window)."""
        names = self.event_names(purchase)
        if names is not None and row.event not in names:
            return False
        if (
            now is not None
            and self.window_days is not None
            and as_utc(row.timestamp) < window_start(now, self.window_days)
        ):
            return False
        conditions = self.conditions
        return not conditions or all(condition_holds(c, extract(row, c.property)) for c in conditions)

    def value_of(self, row: EventView, purchase: PurchaseSettings) -> Any:
        """Return the property this trait aggregates (None when it has none or the event lacks it)."""
        path = self.property_path(purchase)
        return None if path is None else extract(row, path)


def window_start(now: datetime, days: int) -> datetime:
    """Return the first instant inside a window of ``days`` days ending at ``now``."""
    return as_utc(now) - timedelta(days=days)


#: A trait as offered to one kind of event: the definition, its conditions left to check per event (on
#: properties and context) and the property path it aggregates.
_Offered = tuple[TraitSpec, tuple[Condition, ...], str | None]


class Offers:
    """The traits each event counts for (no window), as ``TraitSpec.accepts`` and ``value_of`` decide, with
    what depends on the event's columns alone decided once per (event, type, channel).

    An event's name and the conditions on its columns (``channel = web``, ``event != email_delivered``:
    every built-in "last seen" trait has one) are the same for every event of a kind, and a stream has few
    kinds; only the conditions on properties and context are left to check per event. Same answers as
    ``[(s, s.value_of(row, p)) for s in specs if s.accepts(row, p)]``, in the specs' order."""

    __slots__ = ("_kinds", "_purchase", "_specs")

    def __init__(self, specs: Sequence[TraitSpec], purchase: PurchaseSettings) -> None:
        self._specs = tuple(specs)
        self._purchase = purchase
        self._kinds: dict[tuple[str | None, str, str], list[_Offered]] = {}

    def _of_kind(self, event: str | None, kind: str, channel: str) -> list[_Offered]:
        columns = {"event": event, "type": kind, "channel": channel}
        out = []
        for spec in self._specs:
            names = spec.event_names(self._purchase)
            if names is not None and event not in names:
                continue
            rest = tuple(c for c in spec.conditions if c.property not in COLUMNS)
            if all(condition_holds(c, columns[c.property]) for c in spec.conditions if c.property in COLUMNS):
                out.append((spec, rest, spec.property_path(self._purchase)))
        return out

    def counted(self, row: EventView) -> list[tuple[TraitSpec, Any]]:
        """The traits ``row`` counts for, each with the property it aggregates (None when it has none)."""
        key = (row.event, row.type, row.channel)
        offered = self._kinds.get(key)
        if offered is None:
            offered = self._kinds[key] = self._of_kind(*key)
        return [
            (spec, None if path is None else extract(row, path))
            for spec, rest, path in offered
            if not rest or all(condition_holds(c, extract(row, c.property)) for c in rest)
        ]


def validate(
    *,
    name: str,
    event: str,
    aggregation: str,
    property: str | None,
    conditions: Iterable[Mapping[str, Any]] | None,
    window_days: int | None,
    workspace_id: int = 0,
) -> TraitSpec:
    """Check a definition and return its spec; ValidationFailed explains what is wrong."""
    if not name or len(name) > 100 or set(name) - NAME_CHARS or name[0].isdigit():
        raise ValidationFailed("name must be 1-100 characters of a-z, 0-9 and _, not starting with a digit")
    if not event or len(event) > 200:
        raise ValidationFailed("event must name an event, '*' (any) or '$purchase'")
    if aggregation not in AGGREGATIONS:
        raise ValidationFailed(f"aggregation must be one of {', '.join(AGGREGATIONS)}")
    if aggregation in NEEDS_PROPERTY and not property:
        raise ValidationFailed(f"aggregation {aggregation!r} needs a property")
    if property and property != PURCHASE_VALUE:
        path_parts(property)
    if window_days is not None and not 1 <= window_days <= 3650:
        raise ValidationFailed("window_days must be between 1 and 3650")
    parsed: list[Condition] = []
    for raw in conditions or []:
        if not isinstance(raw, Mapping) or set(raw) - {"property", "op", "value"} or "property" not in raw:
            raise ValidationFailed("each condition is {property, op, value}")
        op = raw.get("op", "=")
        value = raw.get("value")
        if op not in OPERATORS:
            raise ValidationFailed(f"op must be one of {' '.join(OPERATORS)}")
        if op == "in":
            if not isinstance(value, list) or not value or any(as_text(v) is None for v in value):
                raise ValidationFailed("'in' needs a non-empty list of scalars")
        elif as_text(value) is None:
            raise ValidationFailed(f"op {op!r} needs a scalar value")
        path_parts(str(raw["property"]))
        parsed.append(Condition(property=str(raw["property"]), op=str(op), value=value))
    return TraitSpec(
        name=name,
        event=event,
        aggregation=aggregation,
        property=property or None,
        conditions=tuple(parsed),
        window_days=window_days,
        workspace_id=workspace_id,
    )


@functools.lru_cache(maxsize=4096)
def iso(at: datetime) -> str:
    """The stored form of a timestamp: ISO 8601 in UTC with microseconds (remembered: an event's time is
    stamped by each of the traits it counts for). Equal instants have one stored form, whatever their zone;
    a naive time is UTC (and never equal to an aware one)."""
    return as_utc(at).isoformat(timespec="microseconds")


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class Accumulator:
    """The incremental state of one trait for one profile; JSON round-trips through ``state``/``load``.

    Events must be added in (timestamp, id) order, or — incrementally — with ids larger than any folded
    before (the log's order): ties on the timestamp then go to the later event, as in a full recompute.
    """

    aggregation: str
    n: int = 0
    total: float = 0.0
    best: Any = None
    at: str | None = None
    counts: dict[str, int] | None = None
    seen: set[str] | None = None
    overflow: bool = False
    #: A bounded state (incremental) stops at the bounds; an unbounded one (a full fold) does not.
    bounded: bool = True
    #: The exact value of an overflowed state, when a full fold computed it.
    exact: Any = None

    @staticmethod
    def empty(aggregation: str, *, bounded: bool = True) -> Accumulator:
        """Return the state of a profile with no matching event."""
        acc = Accumulator(aggregation=aggregation, bounded=bounded)
        if aggregation == "most_frequent":
            acc.counts = {}
        elif aggregation == "distinct_count":
            acc.seen = set()
        return acc

    def compact(self) -> Accumulator:
        """Make a full fold's state storable: past the bounds keep only the exact value and an overflow mark."""
        size = len(self.counts or ()) if self.aggregation == "most_frequent" else len(self.seen or ())
        limit = MAX_COUNTS if self.aggregation == "most_frequent" else MAX_DISTINCT
        if self.aggregation in ("most_frequent", "distinct_count") and size > limit:
            self.exact = self.value()
            self.overflow, self.counts, self.seen = True, None, None
        self.bounded = True
        return self

    def add(self, row: EventView, value: Any) -> None:
        """Fold one accepted event (``value``: its property, None when absent) into the state."""
        agg = self.aggregation
        if agg == "count":
            self.n += 1
        elif agg in NUMERIC:
            if not is_number(value):
                return
            if agg in ("sum", "avg"):
                self.total += value
                self.n += 1
            elif self.best is None or (value < self.best if agg == "min" else value > self.best):
                self.best = value
        elif agg in ("first_at", "days_since_first"):
            stamp = iso(row.timestamp)
            if self.at is None or stamp < self.at:
                self.at = stamp
        elif agg in ("last_at", "days_since_last"):
            stamp = iso(row.timestamp)
            if self.at is None or stamp >= self.at:
                self.at = stamp
        elif agg in ("first_value", "last_value"):
            if as_text(value) is None:
                return
            first = agg == "first_value"
            stamp = iso(row.timestamp)
            if self.at is None or (stamp < self.at if first else stamp >= self.at):
                self.at, self.best = stamp, value
        elif agg == "most_frequent":
            if as_text(value) is None or self.overflow or self.counts is None:
                return
            key = _key(value)
            self.counts[key] = self.counts.get(key, 0) + 1
            if self.bounded and len(self.counts) > MAX_COUNTS:
                self.overflow, self.counts = True, None
        elif agg == "distinct_count":
            if as_text(value) is None or self.overflow or self.seen is None:
                return
            self.seen.add(_key(value))
            if self.bounded and len(self.seen) > MAX_DISTINCT:
                self.overflow, self.seen = True, None

    def value(self, now: datetime | None = None) -> Any:
        """Return the trait's value (None when no event counted; clock-dependent ones need ``now``)."""
        agg = self.aggregation
        if self.overflow:
            return self.exact
        if agg == "count":
            return self.n
        if agg == "sum":
            return _tidy(self.total) if self.n else 0
        if agg == "avg":
            return self.total / self.n if self.n else None
        if agg in ("min", "max", "first_value", "last_value"):
            return self.best
        if agg in ("first_at", "last_at"):
            return self.at
        if agg in CLOCK_DEPENDENT:
            if self.at is None or now is None:
                return None
            return int((as_utc(now) - datetime.fromisoformat(self.at)) // timedelta(days=1))
        if agg == "most_frequent":
            if not self.counts:
                return None
            key = min(self.counts, key=lambda k: (-self.counts[k], k))  # type: ignore[index]
            return json.loads(key)
        if agg == "distinct_count":
            return len(self.seen or ())
        raise ValueError(agg)

    def state(self) -> Any:
        """Return the JSON form kept in ``Profile.computed["_state"]``."""
        agg = self.aggregation
        if agg == "count":
            return self.n
        if agg in ("sum", "avg"):
            return [self.total, self.n]
        if agg in ("min", "max"):
            return self.best
        if agg in ("first_at", "last_at", *CLOCK_DEPENDENT):
            return self.at
        if agg in ("first_value", "last_value"):
            return None if self.at is None else [self.at, self.best]
        if agg == "most_frequent":
            return {"overflow": True} if self.overflow else {"c": self.counts or {}}
        return {"overflow": True} if self.overflow else {"s": sorted(self.seen or ())}

    @staticmethod
    def load(aggregation: str, state: Any) -> Accumulator:
        """Rebuild an accumulator from its JSON form (a missing state is the empty one)."""
        acc = Accumulator.empty(aggregation)
        if state is None:
            return acc
        if aggregation == "count":
            acc.n = int(state)
        elif aggregation in ("sum", "avg"):
            acc.total, acc.n = float(state[0]), int(state[1])
        elif aggregation in ("min", "max"):
            acc.best = state
        elif aggregation in ("first_at", "last_at", *CLOCK_DEPENDENT):
            acc.at = state
        elif aggregation in ("first_value", "last_value"):
            acc.at, acc.best = state[0], state[1]
        elif aggregation == "most_frequent":
            acc.overflow = bool(state.get("overflow"))
            acc.counts = None if acc.overflow else dict(state.get("c") or {})
        else:
            acc.overflow = bool(state.get("overflow"))
            acc.seen = None if acc.overflow else set(state.get("s") or ())
        return acc


def _tidy(value: float) -> float | int:
    """Sums of whole numbers stay integers; others are rounded to 10 places against float noise."""
    if float(value).is_integer():
        return int(value)
    return round(value, 10)


def fold(
    spec: TraitSpec, rows: Iterable[EventView], purchase: PurchaseSettings, now: datetime | None
) -> Accumulator:
    """Fold one profile's events (in (timestamp, id) order) into a fresh, unbounded accumulator."""
    acc = Accumulator.empty(spec.aggregation, bounded=False)
    for row in rows:
        if spec.accepts(row, purchase, now if spec.window_days is not None else None):
            acc.add(row, spec.value_of(row, purchase))
    return acc


def builtin_specs() -> list[tuple[TraitSpec, str]]:
    """Return the built-in definitions every workspace gets, with their descriptions."""
    purchase_value = PURCHASE_VALUE

    def seen(channel: str, skip: str | None = None) -> TraitSpec:
        conds: tuple[Condition, ...] = (Condition("channel", "=", channel),)
        if skip:
            conds += (Condition("event", "!=", skip),)
        return TraitSpec(
            name=f"last_seen_{channel}", event=ANY_EVENT, aggregation="last_at", conditions=conds
        )

    return [
        (TraitSpec("total_orders", PURCHASE, "count"), "Number of purchases"),
        (TraitSpec("total_spend", PURCHASE, "sum", purchase_value), "Sum of purchase values"),
        (TraitSpec("average_order_value", PURCHASE, "avg", purchase_value), "Mean purchase value"),
        (TraitSpec("first_purchase_at", PURCHASE, "first_at"), "Time of the first purchase"),
        (TraitSpec("last_purchase_at", PURCHASE, "last_at"), "Time of the latest purchase"),
        (seen("web"), "Latest activity on the website"),
        (seen("app"), "Latest activity in the app"),
        (seen("store"), "Latest in-store activity"),
        (seen("email", "email_delivered"), "Latest email engagement (a delivery alone does not count)"),
        (seen("sms", "sms_delivered"), "Latest SMS engagement (a delivery alone does not count)"),
        (
            TraitSpec("favourite_store", PURCHASE, "most_frequent", "store_id"),
            "Store with the most purchases",
        ),
        (
            TraitSpec("favourite_category", PURCHASE, "most_frequent", "category"),
            "Category with the most purchases",
        ),
        (TraitSpec("tenure_days", ANY_EVENT, "days_since_first"), "Whole days since the first event"),
    ]
