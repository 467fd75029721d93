"""The catalogue of what a workspace's segments may name, and the check of a segment against it.

Fields are traits, computed traits and scores alike: a segment names them the same way and the catalogue
says which they are and of what type. Every collection may be ``None``: names of that kind are then not
checked (useful before a workspace has defined anything, and in tests).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, TypeAlias

from rapport.segments.ast import (
    Compare,
    DateRelative,
    Did,
    Engagement,
    EventTime,
    InSegment,
    IsSet,
    Node,
    Scalar,
    Store,
    Subscription,
    Within,
    children,
)
from rapport.segments.errors import SegmentError
from rapport.segments.lexer import START_WORDS, engagement_parts, is_plain_word

FieldType = Literal["string", "number", "boolean", "date", "list"]
FieldSource = Literal["trait", "computed", "score"]
DEFAULT_EVENT_ALIASES: Mapping[str, str] = {"purchased": "order_completed"}

# Which operators make sense for each field type; ``list`` fields hold several scalar values.
_OPS: Mapping[str, frozenset[str]] = {
    "string": frozenset({"=", "!=", ">", ">=", "<", "<=", "contains", "starts with", "in", "not in"}),
    "number": frozenset({"=", "!=", ">", ">=", "<", "<=", "in", "not in"}),
    "boolean": frozenset({"=", "!="}),
    "date": frozenset({"=", "!=", ">", ">=", "<", "<=", "in", "not in"}),
    "list": frozenset({"contains", "in", "not in"}),
}


def field_paths(name: str, catalog: Catalog | None) -> tuple[tuple[str, ...], ...]:
    """Where profile field ``name`` may live, first match wins: its whole name as one key, then, for a dotted
    trait name, the path through nested objects (``address.city``: ``traits["address"]["city"]``).

    A computed trait or score is only ever its whole name (``propensity.purchase_30d``). "Match" means the
    value there is set (present, not null): ``{"a.b": null, "a": {"b": 1}}`` reads 1 for ``a.b``.
    """
    info = catalog.field_info(name) if catalog is not None else None
    parts = tuple(name.split("."))
    if (info is not None and info.source != "trait") or len(parts) < 2 or not all(parts):
        return ((name,),)
    return ((name,), parts)


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """A field a segment can name: where it lives and what type its values have."""

    name: str
    type: FieldType
    source: FieldSource


@dataclass(frozen=True, slots=True)
class Problem:
    """Something a catalogue does not know: the message, what was expected and the nearest known name."""

    message: str
    expected: tuple[str, ...] = ()
    suggestion: str | None = None


@dataclass(frozen=True)
class Catalog:
    """What a workspace's segments may name; ``None`` collections are not checked.

    ``opt_out_topics`` are topics a person receives until they say no (``Topic.opt_in`` false): without a
    state of their own they count as subscribed, as far as the channel itself is. ``annual_dates`` are date
    fields that recur every year: ``is today``, ``in next`` and ``in last`` on them must say ``anniversary``
    (``birthday is today`` would mean born today).
    """

    traits: Mapping[str, FieldType] | None = None
    computed: Mapping[str, FieldType] = field(default_factory=dict)
    scores: Mapping[str, FieldType] = field(default_factory=dict)
    events: Collection[str] | None = None
    event_aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENT_ALIASES))
    stores: Mapping[str, tuple[float, float]] | None = None
    segments: Collection[str] | None = None
    topics: Collection[str] | None = None
    opt_out_topics: Collection[str] = ()
    annual_dates: Collection[str] = frozenset({"birthday", "date_of_birth", "birth_date", "dob"})
    campaigns: Collection[str] | None = None

    def __post_init__(self) -> None:
        for alias in self.event_aliases:
            if not is_plain_word(alias) or alias.lower() in START_WORDS or engagement_parts(alias):
                raise SegmentError(
                    f"{alias!r} cannot be an event alias: use one plain word that is no keyword"
                )

    def field_info(self, name: str) -> FieldInfo | None:
        """Return what the catalogue knows of field ``name`` (None when unknown)."""
        for source, table in (("score", self.scores), ("computed", self.computed), ("trait", self.traits)):
            if table is not None and name in table:
                return FieldInfo(name, table[name], source)  # type: ignore[arg-type]
        return None

    def checks_fields(self) -> bool:
        """Tell whether field names are checked (the catalogue lists traits)."""
        return self.traits is not None

    def field_names(self) -> list[str]:
        """Return every known field name, sorted."""
        return sorted({*(self.traits or {}), *self.computed, *self.scores})

    def field_problem(self, name: str) -> Problem | None:
        """Return why ``name`` cannot be used as a field, or None."""
        if not self.checks_fields() or self.field_info(name) is not None:
            return None
        return Problem(f"unknown field {name!r}", ("a known field",), nearest(name, self.field_names()))

    def event_problem(self, name: str) -> Problem | None:
        """Return why ``name`` is not a known event, or None."""
        return _membership("event", name, self.events)

    def store_problem(self, name: str) -> Problem | None:
        """Return why ``name`` is not a known store, or None."""
        return _membership("store", name, self.stores)

    def segment_problem(self, name: str) -> Problem | None:
        """Return why ``name`` is not a known segment, or None."""
        return _membership("segment", name, self.segments)

    def topic_problem(self, name: str) -> Problem | None:
        """Return why ``name`` is not a known topic, or None."""
        return _membership("topic", name, self.topics)

    def campaign_problem(self, name: str) -> Problem | None:
        """Return why ``name`` is not a known campaign, or None."""
        return _membership("campaign", name, self.campaigns)


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the known name closest to ``name`` (difflib ratio ≥ 0.6), or None."""
    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def _membership(kind: str, name: str, known: Collection[str] | None) -> Problem | None:
    if known is None or name in known:
        return None
    return Problem(f"unknown {kind} {name!r}", (f"a known {kind}",), nearest(name, known))


def _value_kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, date):
        return "date"
    return "string"


def compare_problem(info: FieldInfo, op: str, value: object) -> Problem | None:
    """Return why ``info.name op value`` does not fit the field's type, or None."""
    if op not in _OPS[info.type]:
        allowed = sorted(_OPS[info.type])
        return Problem(f"{op} does not apply to {info.type} field {info.name!r}", tuple(allowed))
    if info.type == "list":
        return None
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if _value_kind(item) != info.type:
            message = f"{info.name!r} is a {info.type} field; {item!r} is a {_value_kind(item)}"
            if info.type == "date" and isinstance(item, str) and _looks_like_date(item):
                message += f" (write dates without quotes: {item})"
            return Problem(message, (f"a {info.type}",))
    return None


def _looks_like_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def annual_problem(node: DateRelative, catalog: Catalog) -> Problem | None:
    """Return why a date-relative condition on a yearly date (a birthday) must compare anniversaries, or None."""
    if (
        node.anniversary
        or node.kind not in ("today", "in next", "in last")
        or node.field not in catalog.annual_dates
    ):
        return None
    fixed = f"{node.field} anniversary " + (
        "is today" if node.kind == "today" else f"{node.kind} {node.days} days"
    )
    return Problem(
        f"{node.field!r} recurs every year: compare its anniversary (as written it means the very date)",
        ("anniversary",),
        fixed,
    )


# Where in the source each part of a node came from; the parser provides it, JSON has none.
Locate: TypeAlias = Callable[[Node, str], tuple[int, int] | None]


def check(node: Node, catalog: Catalog, *, locate: Locate | None = None) -> None:
    """Raise ``SegmentError`` for the first name or type in ``node`` that ``catalog`` does not allow."""
    _check(node, catalog, locate or (lambda _node, _part: None), in_where=False)


def _raise(problem: Problem | None, node: Node, part: str, locate: Locate) -> None:
    if problem is None:
        return
    line, column = locate(node, part) or (None, None)
    raise SegmentError(problem.message, line, column, problem.expected, problem.suggestion)


def _check(node: Node, catalog: Catalog, locate: Locate, *, in_where: bool) -> None:
    if isinstance(node, Compare | IsSet | DateRelative) and not in_where:
        _raise(catalog.field_problem(node.field), node, "field", locate)
        info = catalog.field_info(node.field)
        if info is not None and isinstance(node, Compare):
            _raise(compare_problem(info, node.op, node.value), node, "value", locate)
        if info is not None and isinstance(node, DateRelative) and info.type != "date":
            problem = Problem(f"{node.field!r} is a {info.type} field, not a date", ("a date field",))
            _raise(problem, node, "field", locate)
        if isinstance(node, DateRelative):
            _raise(annual_problem(node, catalog), node, "field", locate)
    elif isinstance(node, Did | EventTime):
        _raise(catalog.event_problem(node.event), node, "event", locate)
    elif isinstance(node, Engagement) and node.campaign is not None:
        _raise(catalog.campaign_problem(node.campaign), node, "campaign", locate)
    elif isinstance(node, Subscription) and node.topic is not None:
        _raise(catalog.topic_problem(node.topic), node, "topic", locate)
    elif isinstance(node, InSegment):
        _raise(catalog.segment_problem(node.segment), node, "segment", locate)
    elif isinstance(node, Within) and isinstance(node.target, Store):
        _raise(catalog.store_problem(node.target.name), node, "store", locate)
    for child in children(node):
        _check(child, catalog, locate, in_where=in_where or isinstance(node, Did | EventTime))
