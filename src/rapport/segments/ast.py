"""The segment AST: frozen, validated nodes; the one representation every other part works on.

A segment is a tree of conditions joined by ``And``/``Or``/``Not``. Text (``parser``/``printer``) and JSON
(``codec``) are two spellings of the same tree. Every node checks its own invariants on construction, so a
tree that exists is a tree the printer can print and the compiler can compile.

Example::

    And((Did("order_completed", count=Count("at least", 3), window=InLast(90)),
         Compare("total_spend", ">", 200)))
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, NoReturn, TypeAlias, get_args

from rapport.segments.errors import SegmentError

Scalar: TypeAlias = str | int | float | bool | date
Value: TypeAlias = Scalar | tuple[Scalar, ...]

CompareOp = Literal["=", "!=", ">", ">=", "<", "<=", "contains", "starts with", "in", "not in"]
COMPARE_OPS: tuple[str, ...] = get_args(CompareOp)
ORDER_OPS = frozenset({">", ">=", "<", "<="})
CountOp = Literal["at least", "at most", "exactly"]
COUNT_OPS: tuple[str, ...] = get_args(CountOp)
WindowUnit = Literal["days", "hours"]
DateKind = Literal["today", "in next", "in last", "more than ago", "less than ago"]
DATE_KINDS: tuple[str, ...] = get_args(DateKind)
Channel = Literal["email", "sms", "push", "inapp", "webhook"]
CHANNELS: tuple[str, ...] = get_args(Channel)
Action = Literal["sent", "delivered", "opened", "clicked", "bounced", "unsubscribed"]
ACTIONS: tuple[str, ...] = get_args(Action)
BucketOp = Literal["<", "<=", ">", ">="]
BUCKET_OPS: tuple[str, ...] = get_args(BucketOp)
# Every number of the language has a bound, so that each one compiles to a query both databases can run.
MAX_DAYS = 36_500  # a century: longer spans mean nothing to a marketer and overflow date arithmetic
MAX_HOURS = MAX_DAYS * 24
MAX_COUNT = 1_000_000_000  # events per person; far beyond any real count, well inside a 64-bit SQL integer
#: Numbers compared with fields are bound as doubles; an integer beyond this has no double to stand for it.
MAX_NUMBER = sys.float_info.max
MAX_DEPTH = 100  # nesting of and/or/not/parentheses


def _fail(message: str) -> NoReturn:
    raise SegmentError(message)


def _text(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        _fail(f"{what} must be a non-empty string")


def check_whole(value: object, what: str, minimum: int = 0, maximum: int | None = None) -> None:
    """Raise ``SegmentError`` unless ``value`` is a whole number from ``minimum`` to ``maximum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _fail(f"{what} must be a whole number of at least {minimum:,}")
    if maximum is not None and value > maximum:
        _fail(f"{what} must be at most {maximum:,}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: object, what: str) -> None:
    """Refuse NaN, the infinities and integers too large to be a double (SQL compares numbers as doubles)."""
    if isinstance(value, float) and not math.isfinite(value):
        _fail(f"{what} must be a finite number")
    if isinstance(value, int) and abs(value) > MAX_NUMBER:  # exact: Python compares int and float exactly
        _fail(f"{what} is too large: numbers must lie between -{MAX_NUMBER!r} and {MAX_NUMBER!r}")


def _real(node: object, name: str, value: object, what: str) -> None:
    """Check ``value`` is a finite number and store it on ``node`` as a float."""
    if not _is_number(value):
        _fail(f"{what} must be a finite number")
    _finite(value, what)
    object.__setattr__(node, name, float(value) + 0.0)  # type: ignore[arg-type]  # + 0.0 folds -0.0 into 0.0


def _scalar(value: object, what: str) -> None:
    if not isinstance(value, str | int | float | bool | date):
        _fail(f"{what} must be a string, number, boolean or date")
    _finite(value, what)


def _check_days(value: object) -> None:
    check_whole(value, "a number of days", 0, MAX_DAYS)


def _op(value: object, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        _fail(f"{what} must be one of {', '.join(allowed)}")


# ---- boolean structure -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` hold (two or more)."""

    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        _items(self, "and")


@dataclass(frozen=True, slots=True)
class Or:
    """At least one of ``items`` holds (two or more)."""

    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        _items(self, "or")


@dataclass(frozen=True, slots=True)
class Not:
    """``item`` does not hold."""

    item: Node

    def __post_init__(self) -> None:
        if not isinstance(self.item, NODE_TYPES):
            _fail("not needs a condition")


def _items(node: And | Or, what: str) -> None:
    if not isinstance(node.items, tuple | list):
        _fail(f"{what} needs a list of conditions")
    object.__setattr__(node, "items", tuple(node.items))
    if len(node.items) < 2:
        _fail(f"{what} needs at least two conditions")
    for item in node.items:
        if not isinstance(item, NODE_TYPES):
            _fail(f"{what} items must be conditions")


# ---- traits (and event properties inside ``where``) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``: a trait, computed trait or score (or an event property inside ``where``)."""

    field: str
    op: CompareOp
    value: Value

    def __post_init__(self) -> None:
        _text(self.field, "field")
        _op(self.op, COMPARE_OPS, "comparison operator")
        if self.op in ("in", "not in"):
            if not isinstance(self.value, tuple | list) or not self.value:
                _fail(f"{self.op} needs a non-empty list of values")
            object.__setattr__(self, "value", tuple(self.value))
            for item in self.value:
                _scalar(item, "list value")
            return
        _scalar(self.value, "value")
        if self.op == "starts with" and not isinstance(self.value, str):
            _fail("starts with needs a string")
        if self.op in ORDER_OPS and isinstance(self.value, bool):
            _fail(f"{self.op} cannot compare with a boolean")


@dataclass(frozen=True, slots=True)
class IsSet:
    """``field is set`` (``is_set``) or ``field is not set``."""

    field: str
    is_set: bool = True

    def __post_init__(self) -> None:
        _text(self.field, "field")
        if not isinstance(self.is_set, bool):
            _fail("is_set must be a boolean")


@dataclass(frozen=True, slots=True)
class DateRelative:
    """A date trait against today in the profile's timezone: ``contract_end in next 30 days``.

    ``anniversary`` compares month and day only (``birthday anniversary is today``).
    """

    field: str
    kind: DateKind
    days: int = 0
    anniversary: bool = False

    def __post_init__(self) -> None:
        _text(self.field, "field")
        _op(self.kind, DATE_KINDS, "date condition")
        _check_days(self.days)
        if self.kind == "today" and self.days != 0:
            _fail("is today takes no number of days")
        if not isinstance(self.anniversary, bool):
            _fail("anniversary must be a boolean")
        if self.anniversary and self.kind not in ("today", "in next", "in last"):
            _fail("anniversary works with is today, in next and in last")


# ---- events and messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Count:
    """How many matching events: ``at least 3 times``; the default is at least once."""

    op: CountOp = "at least"
    n: int = 1

    def __post_init__(self) -> None:
        _op(self.op, COUNT_OPS, "count")
        check_whole(self.n, "a count", 0, MAX_COUNT)


@dataclass(frozen=True, slots=True)
class Ever:
    """Any time at all."""


@dataclass(frozen=True, slots=True)
class InLast:
    """The rolling window ``(now - amount unit, now]``."""

    amount: int
    unit: WindowUnit = "days"

    def __post_init__(self) -> None:
        _op(self.unit, ("days", "hours"), "window unit")
        check_whole(
            self.amount, f"window length in {self.unit}", 1, MAX_HOURS if self.unit == "hours" else MAX_DAYS
        )


@dataclass(frozen=True, slots=True)
class Between:
    """The UTC calendar days ``start`` to ``end``, both included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if not isinstance(self.start, date) or not isinstance(self.end, date):
            _fail("between needs two dates")
        if self.start > self.end:
            _fail("between needs the earlier date first")


Window: TypeAlias = Ever | InLast | Between


@dataclass(frozen=True, slots=True)
class DaysAgo:
    """The instant ``now - days`` (a point for first/last conditions)."""

    days: int

    def __post_init__(self) -> None:
        _check_days(self.days)


TimePoint: TypeAlias = date | DaysAgo


def _where(value: object) -> None:
    if value is not None and not is_property_expr(value):
        _fail("where takes property comparisons joined by and, or, not")


def _count_window(count: object, window: object) -> None:
    if not isinstance(count, Count):
        _fail("count must be a Count")
    if not isinstance(window, Ever | InLast | Between):
        _fail("window must be Ever, InLast or Between")


@dataclass(frozen=True, slots=True)
class Did:
    """The profile did ``event`` (matching ``where``) ``count`` times within ``window``."""

    event: str
    where: Node | None = None
    count: Count = field(default_factory=Count)
    window: Window = field(default_factory=Ever)

    def __post_init__(self) -> None:
        _text(self.event, "event name")
        _where(self.where)
        _count_window(self.count, self.window)


@dataclass(frozen=True, slots=True)
class EventTime:
    """The first or last time the profile did ``event`` (matching ``where``) is before/after ``point``."""

    which: Literal["first", "last"]
    event: str
    op: Literal["before", "after"]
    point: TimePoint
    where: Node | None = None

    def __post_init__(self) -> None:
        _op(self.which, ("first", "last"), "first/last")
        _text(self.event, "event name")
        _op(self.op, ("before", "after"), "before/after")
        if not isinstance(self.point, date | DaysAgo):
            _fail("point must be a date or a number of days ago")
        _where(self.where)


@dataclass(frozen=True, slots=True)
class Engagement:
    """Messages ``action`` (opened, clicked, ...) on ``channel`` (None: any), optionally of one campaign."""

    action: Action
    channel: Channel | None = None
    campaign: str | None = None
    count: Count = field(default_factory=Count)
    window: Window = field(default_factory=Ever)

    def __post_init__(self) -> None:
        _op(self.action, ACTIONS, "message action")
        if self.channel is not None:
            _op(self.channel, CHANNELS, "channel")
        if self.campaign is not None:
            _text(self.campaign, "campaign")
        _count_window(self.count, self.window)


# ---- consent, membership, place, buckets -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    """The subscription state of a channel (or one topic on it) is ``state``."""

    channel: Channel
    state: Literal["subscribed", "unsubscribed"] = "subscribed"
    topic: str | None = None

    def __post_init__(self) -> None:
        _op(self.channel, CHANNELS, "channel")
        _op(self.state, ("subscribed", "unsubscribed"), "subscription state")
        if self.topic is not None:
            _text(self.topic, "topic")


@dataclass(frozen=True, slots=True)
class InSegment:
    """The profile is a member of the segment named ``segment``."""

    segment: str

    def __post_init__(self) -> None:
        _text(self.segment, "segment name")


@dataclass(frozen=True, slots=True)
class Point:
    """A latitude/longitude in degrees."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        _real(self, "lat", self.lat, "latitude")
        _real(self, "lon", self.lon, "longitude")
        if not -90 <= self.lat <= 90:
            _fail("latitude must be between -90 and 90")
        if not -180 <= self.lon <= 180:
            _fail("longitude must be between -180 and 180")


@dataclass(frozen=True, slots=True)
class Store:
    """A store by name, placed by the catalogue."""

    name: str

    def __post_init__(self) -> None:
        _text(self.name, "store name")


@dataclass(frozen=True, slots=True)
class Within:
    """The profile's location is at most ``km`` kilometres (great circle) from ``target``."""

    km: float
    target: Store | Point

    def __post_init__(self) -> None:
        _real(self, "km", self.km, "distance")
        if self.km <= 0:
            _fail("distance must be more than 0")
        if not isinstance(self.target, Store | Point):
            _fail("within needs a store or a point")


@dataclass(frozen=True, slots=True)
class RandomBucket:
    """The profile's stable bucket in [0, 100) compares with ``percent``; see ``evaluator.bucket``."""

    op: BucketOp
    percent: float
    seed: str | None = None

    def __post_init__(self) -> None:
        _op(self.op, BUCKET_OPS, "bucket operator")
        _real(self, "percent", self.percent, "percentage")
        if not 0 <= self.percent <= 100:
            _fail("percentage must be between 0 and 100")
        if self.seed is not None:
            _text(self.seed, "seed")


Node: TypeAlias = (
    And
    | Or
    | Not
    | Compare
    | IsSet
    | DateRelative
    | Did
    | EventTime
    | Engagement
    | Subscription
    | InSegment
    | Within
    | RandomBucket
)
NODE_TYPES = get_args(Node)


def is_property_expr(node: object) -> bool:
    """Tell whether ``node`` may stand in a ``where`` clause: comparisons joined by and/or/not."""
    if isinstance(node, Compare | IsSet):
        return True
    if isinstance(node, And | Or):
        return all(is_property_expr(item) for item in node.items)
    if isinstance(node, Not):
        return is_property_expr(node.item)
    return False


def children(node: Node) -> tuple[Node, ...]:
    """Return the direct sub-conditions of ``node``, ``where`` clauses included."""
    if isinstance(node, And | Or):
        return node.items
    if isinstance(node, Not):
        return (node.item,)
    if isinstance(node, Did | EventTime) and node.where is not None:
        return (node.where,)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Yield ``node`` and every node below it, depth first, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)
