"""What a segment depends on: the segments it names (with cycle detection), fields, events and time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rapport.segments.ast import (
    Compare,
    DateRelative,
    DaysAgo,
    Did,
    Engagement,
    EventTime,
    InLast,
    InSegment,
    IsSet,
    Node,
    Subscription,
    Within,
    children,
    walk,
)
from rapport.segments.errors import SegmentError


@dataclass(frozen=True, slots=True)
class Dependencies:
    """The inputs whose change can change a profile's membership; ``by_time``: it can change as time passes."""

    fields: frozenset[str]
    events: frozenset[str]
    messages: bool
    subscriptions: bool
    segments: frozenset[str]
    location: bool
    by_time: bool


def referenced_segments(node: Node) -> frozenset[str]:
    """Return the names of the segments ``node`` asks membership of."""
    return frozenset(n.segment for n in walk(node) if isinstance(n, InSegment))


def dependencies(node: Node) -> Dependencies:
    """Return what ``node`` reads, so a change can re-evaluate only the segments it may affect."""
    fields: set[str] = set()
    events: set[str] = set()
    kinds: set[str] = set()
    by_time = False

    def visit(current: Node) -> None:
        nonlocal by_time
        if isinstance(current, Compare | IsSet | DateRelative):
            fields.add(current.field)
            by_time |= isinstance(current, DateRelative)
        elif isinstance(current, Did | EventTime):
            events.add(current.event)
            window_moves = isinstance(current, Did) and isinstance(current.window, InLast)
            by_time |= window_moves or (isinstance(current, EventTime) and isinstance(current.point, DaysAgo))
            return  # a where clause reads event properties, not profile fields
        elif isinstance(current, Engagement):
            kinds.add("messages")
            by_time |= isinstance(current.window, InLast)
        elif isinstance(current, Within):
            kinds.add("location")
        elif isinstance(current, Subscription):
            kinds.add("subscriptions")
        for child in children(current):
            visit(child)

    visit(node)
    return Dependencies(
        fields=frozenset(fields),
        events=frozenset(events),
        messages="messages" in kinds,
        subscriptions="subscriptions" in kinds,
        segments=referenced_segments(node),
        location="location" in kinds,
        by_time=by_time,
    )


def check_cycles(name: str, node: Node, resolve: Callable[[str], Node | None]) -> None:
    """Raise ``SegmentError`` naming the cycle if segment ``name`` (as ``node``) reaches itself.

    ``resolve`` returns the AST of another segment by name, or None when there is none (an unknown segment
    is the catalogue's concern, not a cycle).
    """
    done: set[str] = set()

    def visit(tree: Node, path: list[str]) -> None:
        for target in sorted(referenced_segments(tree)):
            if target in path:
                cycle = [*path[path.index(target) :], target]
                raise SegmentError(
                    f"segment cycle: {' → '.join(repr(step) for step in cycle)}",
                    expected=["a segment that does not refer back to itself"],
                )
            if target in done:
                continue
            below = resolve(target)
            if below is not None:
                visit(below, [*path, target])
            done.add(target)

    visit(node, [name])
