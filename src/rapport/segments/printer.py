"""The printer: an AST back to canonical segment text, so that ``parse(to_text(node)) == node``.

The canonical form is one line, lower-case keywords, double-quoted strings, event names in quotes (or the
catalogue's alias, such as ``purchased``), parentheses only where precedence (not > and > or) needs them,
and defaults left out (``at least 1 time``, ``ever``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date

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
    TimePoint,
    Window,
    Within,
)
from rapport.segments.catalog import DEFAULT_EVENT_ALIASES, Catalog
from rapport.segments.lexer import START_WORDS, engagement_parts, is_plain_word

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def to_text(node: Node, *, catalog: Catalog | None = None) -> str:
    """Print ``node`` as canonical segment text (using the catalogue's event aliases, if given)."""
    aliases = catalog.event_aliases if catalog is not None else DEFAULT_EVENT_ALIASES
    verbs: dict[str, str] = {}
    for alias in sorted(aliases, key=str.lower):
        if is_plain_word(alias) and alias.lower() not in START_WORDS and not engagement_parts(alias):
            verbs.setdefault(aliases[alias], alias.lower())
    return _Printer(verbs, frozenset(a.lower() for a in aliases)).node(node)


def quote(text: str, mark: str = '"') -> str:
    """Quote ``text`` as a segment string (or, with a backtick, a field name), escaping what needs it."""
    out = []
    for char in text:
        if char == mark:
            out.append("\\" + char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 32 or 0x7F <= ord(char) < 0xA0:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return mark + "".join(out) + mark


def number(value: float) -> str:
    """Print a number so that the lexer reads it back as the same value (integral floats without .0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def scalar(value: Scalar) -> str:
    """Print a literal value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        assert math.isfinite(value)
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    return quote(value)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


class _Printer:
    def __init__(self, verbs: Mapping[str, str], aliases: frozenset[str]) -> None:
        self.verbs = verbs
        self.aliases = aliases

    def field(self, name: str) -> str:
        lowered = name.lower()
        reserved = lowered in START_WORDS or lowered in self.aliases or engagement_parts(name)
        if is_plain_word(name) and not reserved:
            return name
        return quote(name, "`")

    def node(self, node: Node) -> str:
        if isinstance(node, Or):
            return " or ".join(self.child(item, Or) for item in node.items)
        if isinstance(node, And):
            return " and ".join(self.child(item, And) for item in node.items)
        if isinstance(node, Not):
            if isinstance(node.item, Did) and node.item.event not in self.verbs:
                return self.did(node.item, negated=True)
            return "not " + self.child(node.item, Not)
        if isinstance(node, Compare):
            if isinstance(node.value, tuple):
                values = ", ".join(scalar(value) for value in node.value)
                return f"{self.field(node.field)} {node.op} ({values})"
            return f"{self.field(node.field)} {node.op} {scalar(node.value)}"
        if isinstance(node, IsSet):
            return f"{self.field(node.field)} is {'set' if node.is_set else 'not set'}"
        if isinstance(node, DateRelative):
            return self.date_relative(node)
        if isinstance(node, Did):
            return self.did(node, negated=False)
        if isinstance(node, EventTime):
            return f"{node.which} {self.event(node.event)}{self.where(node.where)} {self.point(node.op, node.point)}"
        if isinstance(node, Engagement):
            head = f"{node.channel or 'message'}.{node.action}"
            if node.campaign is not None:
                head += f" campaign {quote(node.campaign)}"
            return head + self.count_window(node.count, node.window)
        if isinstance(node, Subscription):
            text = (
                f"subscribed to {node.channel}"
                if node.state == "subscribed"
                else f"unsubscribed from {node.channel}"
            )
            return text + (f" topic {quote(node.topic)}" if node.topic is not None else "")
        if isinstance(node, InSegment):
            return f"in segment {quote(node.segment)}"
        if isinstance(node, Within):
            target = node.target
            where = (
                f"({number(target.lat)}, {number(target.lon)})"
                if isinstance(target, Point)
                else (f"store {quote(target.name)}")
            )
            return f"within {number(node.km)} km of {where}"
        if isinstance(node, RandomBucket):
            seed = f" seed {quote(node.seed)}" if node.seed is not None else ""
            return f"random bucket {node.op} {number(node.percent)}%{seed}"
        raise TypeError(f"not a segment node: {node!r}")

    def child(self, node: Node, parent: type) -> str:
        text = self.node(node)
        needs = isinstance(node, Or) or (isinstance(node, And) and parent is not Or)
        return f"({text})" if needs else text

    def date_relative(self, node: DateRelative) -> str:
        head = self.field(node.field) + (" anniversary" if node.anniversary else "")
        if node.kind == "today":
            return f"{head} is today"
        if node.kind in ("in next", "in last"):
            return f"{head} {node.kind} {_days(node.days)}"
        return f"{head} {node.kind.split()[0]} than {_days(node.days)} ago"

    def event(self, event: str) -> str:
        return self.verbs.get(event) or f"did {quote(event)}"

    def did(self, node: Did, *, negated: bool) -> str:
        head = f"did not {quote(node.event)}" if negated else self.event(node.event)
        return head + self.where(node.where) + self.count_window(node.count, node.window)

    def where(self, where: Node | None) -> str:
        if where is None:
            return ""
        text = self.node(where)
        return f" where {text}" if isinstance(where, Compare | IsSet) else f" where ({text})"

    def count_window(self, count: Count, window: Window) -> str:
        text = ""
        if count != Count():
            text += f" {count.op} {count.n} {'time' if count.n == 1 else 'times'}"
        if isinstance(window, InLast):
            unit = window.unit if window.amount != 1 else window.unit[:-1]
            text += f" in last {window.amount} {unit}"
        elif isinstance(window, Between):
            text += f" between {window.start.isoformat()} and {window.end.isoformat()}"
        else:
            assert isinstance(window, Ever)
        return text

    def point(self, op: str, point: TimePoint) -> str:
        if isinstance(point, DaysAgo):
            return f"{'more' if op == 'before' else 'less'} than {_days(point.days)} ago"
        return f"{op} {point.isoformat()}"
