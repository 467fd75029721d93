"""A hand-written recursive-descent parser from segment text to the AST.

Grammar (docs/segment-language.md has the full reference with examples)::

    segment    := or END
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | primary
    primary    := "(" or ")" | did | first_last | engagement | subscription | membership | within
                | bucket | field_cond
    did        := ("did" ["not"] event | ALIAS) [where] tail
    tail       := (count | window)*          each at most once
    where      := "where" (prop_cond | "not" ... | "(" prop_or ")")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, NoReturn, TypeVar

from rapport.segments.ast import (
    BUCKET_OPS,
    CHANNELS,
    COUNT_OPS,
    MAX_COUNT,
    MAX_DAYS,
    MAX_DEPTH,
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
    check_whole,
)
from rapport.segments.catalog import DEFAULT_EVENT_ALIASES, Catalog, check, nearest
from rapport.segments.errors import SegmentError
from rapport.segments.lexer import START_WORDS, Token, engagement_parts, tokenize

N = TypeVar("N")
_CONDITION = (
    "a field",
    "did",
    "not",
    "(",
    "in segment",
    "subscribed to",
    "unsubscribed from",
    "within",
    "random bucket",
    "first",
    "last",
    "email.opened (or another channel.action)",
)
_FIELD_OPS = (
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "contains",
    "starts with",
    "in (...)",
    "not in (...)",
    "is set",
    "is not set",
    "is today",
    "in next N days",
    "in last N days",
    "more than N days ago",
    "less than N days ago",
    "anniversary",
)
_VALUE = ("a string", "a number", "a date", "true", "false")


MAX_LENGTH = 20_000  # characters; far beyond any segment a person writes


def parse(text: str, *, catalog: Catalog | None = None) -> Node:
    """Parse segment ``text`` into its AST; with ``catalog``, also check every name and type in it."""
    if len(text) > MAX_LENGTH:
        raise SegmentError(f"a segment may be at most {MAX_LENGTH} characters long", 1, 1)
    return _Parser(text, catalog).parse()


class _Parser:
    def __init__(self, text: str, catalog: Catalog | None) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.catalog = catalog
        aliases = catalog.event_aliases if catalog is not None else DEFAULT_EVENT_ALIASES
        self.aliases: Mapping[str, str] = {name.lower(): event for name, event in aliases.items()}
        self.spans: dict[tuple[int, str], tuple[int, int]] = {}
        self.depth = 0

    # ---- plumbing ----------------------------------------------------------------------------------------

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek.kind != "end":
            message = f"unexpected {self.peek.describe()}"
            seen_where = any(t.is_word("where") for t in self.tokens[: self.pos])
            if seen_where and self.peek.is_word("at", "exactly", "in", "between", "ever", "before", "after"):
                message += " (a where clause with several conditions needs parentheses)"
            self.fail(message, ["and", "or", "the end of the segment"])
        if self.catalog is not None:
            check(node, self.catalog, locate=lambda n, part: self.spans.get((id(n), part)))
        return node

    @property
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def ahead(self, offset: int = 1) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def fail(
        self,
        message: str,
        expected: list[str] | tuple[str, ...],
        token: Token | None = None,
        suggestion: str | None = None,
    ) -> NoReturn:
        at = token or self.peek
        raise SegmentError(message, at.line, at.column, expected, suggestion)

    def accept(self, *words: str) -> Token | None:
        if self.peek.is_word(*words):
            return self.advance()
        return None

    def expect(self, *words: str) -> Token:
        if not self.peek.is_word(*words):
            self.fail(f"expected {' or '.join(words)}, found {self.peek.describe()}", list(words))
        return self.advance()

    def expect_punct(self, char: str) -> Token:
        if self.peek.kind != "punct" or self.peek.text != char:
            self.fail(f"expected {char!r}, found {self.peek.describe()}", [char])
        return self.advance()

    def build(self, at: Token, make: Callable[..., N], *args: Any, **kwargs: Any) -> N:
        """Construct a node, placing any error its own validation raises at ``at``."""
        try:
            return make(*args, **kwargs)
        except SegmentError as error:
            raise SegmentError(error.reason, at.line, at.column, error.expected, error.suggestion) from None

    def mark(self, node: Node, **parts: Token) -> Node:
        for part, token in parts.items():
            self.spans[(id(node), part)] = (token.line, token.column)
        return node

    # ---- terminals ---------------------------------------------------------------------------------------

    def string(self, what: str) -> tuple[str, Token]:
        token = self.peek
        if token.kind != "string":
            self.fail(f"expected {what} in quotes, found {token.describe()}", [f"{what} in quotes"])
        self.advance()
        return str(token.value), token

    def natural(self, what: str, minimum: int = 0, *, limit: tuple[str, int] | None = None) -> int:
        """Read a whole number ≥ ``minimum``; with ``limit`` (name, maximum), refuse a bigger one right here."""
        token = self.peek
        if token.kind != "number" or not isinstance(token.value, int) or token.value < minimum:
            self.fail(f"expected {what} (a whole number ≥ {minimum}), found {token.describe()}", [what])
        if limit is not None:
            self.build(token, check_whole, token.value, limit[0], minimum, limit[1])
        self.advance()
        return token.value

    def days(self) -> int:
        """Read ``N days`` of a date-relative condition or a point in time."""
        days = self.natural("a number of days", limit=("a number of days", MAX_DAYS))
        self.days_word()
        return days

    def number(self, what: str) -> float:
        token = self.peek
        if token.kind != "number":
            self.fail(f"expected {what}, found {token.describe()}", [what])
        self.advance()
        return float(token.value)  # type: ignore[arg-type]

    def date(self) -> date:
        token = self.peek
        if token.kind != "date":
            self.fail(f"expected a date (YYYY-MM-DD), found {token.describe()}", ["a date YYYY-MM-DD"])
        self.advance()
        return token.value  # type: ignore[return-value]

    def scalar(self) -> Scalar:
        token = self.peek
        if token.kind in ("string", "number", "date"):
            self.advance()
            return token.value  # type: ignore[return-value]
        if token.is_word("true", "false"):
            self.advance()
            return token.text.lower() == "true"
        self.fail(f"expected a value, found {token.describe()}", _VALUE)

    def scalar_list(self) -> tuple[Scalar, ...]:
        self.expect_punct("(")
        values = [self.scalar()]
        while self.peek.text == "," and self.peek.kind == "punct":
            self.advance()
            if self.peek.kind == "punct" and self.peek.text == ")":
                break
            values.append(self.scalar())
        self.expect_punct(")")
        return tuple(values)

    def days_word(self, *, hours: bool = False) -> str:
        words = ("day", "days", "hour", "hours") if hours else ("day", "days")
        unit = self.expect(*words).text.lower()
        return "hours" if unit.startswith("hour") else "days"

    # ---- boolean structure -------------------------------------------------------------------------------

    def parse_or(self, *, where: bool = False) -> Node:
        start = self.peek
        items = [self.parse_and(where=where)]
        while self.accept("or"):
            items.append(self.parse_and(where=where))
        return items[0] if len(items) == 1 else self.build(start, Or, tuple(items))

    def parse_and(self, *, where: bool) -> Node:
        start = self.peek
        items = [self.parse_unary(where=where)]
        while self.accept("and"):
            items.append(self.parse_unary(where=where))
        return items[0] if len(items) == 1 else self.build(start, And, tuple(items))

    def parse_unary(self, *, where: bool) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                self.fail(f"conditions are nested more than {MAX_DEPTH} deep", ["a flatter segment"])
            return self.unary(where=where)
        finally:
            self.depth -= 1

    def unary(self, *, where: bool) -> Node:
        if self.accept("not"):
            return Not(self.parse_unary(where=where))
        if self.peek.kind == "punct" and self.peek.text == "(":
            self.advance()
            inner = self.parse_or(where=where)
            self.expect_punct(")")
            return inner
        return self.field_condition(where=True) if where else self.primary()

    def primary(self) -> Node:
        token = self.peek
        word = token.text.lower() if token.kind == "word" else ""
        if word == "did":
            self.advance()
            negated = self.accept("not") is not None
            event, at = self.event_name()
            node = self.did_tail(event, at)
            return Not(node) if negated else node
        if word in self.aliases:
            self.advance()
            return self.did_tail(self.aliases[word], token)
        if word in ("first", "last"):
            return self.event_time()
        if word == "in":
            self.advance()
            self.expect("segment")
            name, at = self.string("a segment name")
            return self.mark(InSegment(name), segment=at)
        if word in ("subscribed", "unsubscribed"):
            return self.subscription()
        if word == "within":
            return self.within()
        if word == "random":
            return self.bucket()
        if word and (parts := engagement_parts(word)):
            self.advance()
            return self.engagement(*parts)
        if token.kind in ("word", "field") and word not in START_WORDS:
            return self.field_condition(where=False)
        self.fail(f"expected a condition, found {token.describe()}", _CONDITION)

    # ---- traits ------------------------------------------------------------------------------------------

    def field_condition(self, *, where: bool) -> Node:
        name_tok = self.peek
        if name_tok.kind not in ("word", "field") or (
            name_tok.kind == "word" and name_tok.text.lower() in START_WORDS
        ):
            what = "a property name" if where else "a condition"
            self.fail(
                f"expected {what}, found {name_tok.describe()}", ["a property name"] if where else _CONDITION
            )
        self.advance()
        name = str(name_tok.value)
        if not where and self.catalog is not None and (problem := self.catalog.field_problem(name)):
            hint = problem.suggestion or nearest(name.lower(), [*self.aliases, *START_WORDS])
            self.fail(problem.message, problem.expected, name_tok, hint)
        node = self.field_tail(name, name_tok, where=where)
        return self.mark(node, field=name_tok)

    def field_tail(self, name: str, name_tok: Token, *, where: bool) -> Node:
        token = self.peek
        if token.kind == "op":
            self.advance()
            return self.compare(name, str(token.value), token)
        if self.accept("contains"):
            return self.compare(name, "contains", self.peek)
        if self.accept("starts"):
            self.expect("with")
            return self.compare(name, "starts with", self.peek)
        if token.is_word("in"):
            self.advance()
            if not where and self.peek.is_word("next", "last"):
                kind = "in " + self.advance().text.lower()
                return self.build(token, DateRelative, name, kind, self.days())
            at = self.peek
            return self.mark(self.build(token, Compare, name, "in", self.scalar_list()), value=at)
        if token.is_word("not") and self.ahead().is_word("in"):
            self.advance()
            self.advance()
            at = self.peek
            return self.mark(self.build(token, Compare, name, "not in", self.scalar_list()), value=at)
        if self.accept("is"):
            if self.accept("set"):
                return IsSet(name, True)
            if self.peek.is_word("not") and self.ahead().is_word("set"):
                self.advance()
                self.advance()
                return IsSet(name, False)
            if not where and self.accept("today"):
                return DateRelative(name, "today")
            self.fail(
                f"expected set, not set or today, found {self.peek.describe()}", ["set", "not set", "today"]
            )
        if not where and self.accept("anniversary"):
            return self.anniversary(name, token)
        if not where and self.peek.is_word("more", "less"):
            kind = self.advance().text.lower() + " than ago"
            self.expect("than")
            days = self.days()
            self.expect("ago")
            return self.build(token, DateRelative, name, kind, days)
        ops = [op for op in _FIELD_OPS if not where or op[0] in "=!<>cs"]
        hint = None
        if token.kind == "word":
            hint = nearest(token.text.lower(), [op for op in ops if op[0].isalpha()])
        at = token
        if hint is None and name_tok.kind == "word":
            hint = nearest(name.lower(), [*self.aliases, "did", "within", "first", "last", "subscribed"])
            at = name_tok if hint else token
        self.fail(f"expected an operator after {name!r}, found {token.describe()}", ops, at, hint)

    def compare(self, name: str, op: str, at: Token) -> Node:
        value_tok = self.peek
        node = self.build(at, Compare, name, op, self.scalar())
        return self.mark(node, value=value_tok)

    def anniversary(self, name: str, at: Token) -> Node:
        if self.accept("is"):
            self.expect("today")
            return self.build(at, DateRelative, name, "today", 0, True)
        self.expect("in")
        kind = "in " + self.expect("next", "last").text.lower()
        return self.build(at, DateRelative, name, kind, self.days(), True)

    # ---- events and messages -----------------------------------------------------------------------------

    def event_name(self) -> tuple[str, Token]:
        token = self.peek
        if token.kind == "string" or (token.kind == "word" and token.text.lower() not in START_WORDS):
            self.advance()
            return str(token.value), token
        self.fail(f"expected an event name, found {token.describe()}", ["an event name in quotes"])

    def where(self) -> Node | None:
        if not self.accept("where"):
            return None
        return self.parse_unary(where=True)

    def did_tail(self, event: str, at: Token) -> Node:
        where = self.where()
        count, window = self.count_window()
        return self.mark(self.build(at, Did, event, where, count, window), event=at)

    def count_window(self) -> tuple[Count, Window]:
        count: Count | None = None
        window: Window | None = None
        while True:
            token = self.peek
            if count is None and token.is_word("at", "exactly"):
                count = self.count()
            elif window is None and token.is_word("in") and self.ahead().is_word("last"):
                self.advance()
                self.advance()
                amount_tok = self.peek
                amount = self.natural("a number of days or hours", 1)
                unit = self.days_word(hours=True)
                window = self.build(amount_tok, InLast, amount, unit)  # the unit sets the maximum
            elif window is None and token.is_word("between"):
                self.advance()
                start = self.date()
                self.expect("and")
                window = self.build(token, Between, start, self.date())
            elif window is None and token.is_word("ever"):
                self.advance()
                window = Ever()
            else:
                return count or Count(), window or Ever()

    def count(self) -> Count:
        token = self.advance()
        op = "at " + self.expect("least", "most").text.lower() if token.is_word("at") else "exactly"
        assert op in COUNT_OPS
        n = self.natural("a number of times", limit=("a count", MAX_COUNT))
        self.accept("time", "times")
        return Count(op, n)  # type: ignore[arg-type]

    def event_time(self) -> Node:
        which_tok = self.advance()
        which = which_tok.text.lower()
        self.accept("time")
        token = self.peek
        word = token.text.lower() if token.kind == "word" else ""
        if word == "did":
            self.advance()
            event, at = self.event_name()
        elif word in self.aliases:
            self.advance()
            event, at = self.aliases[word], token
        else:
            self.fail(
                f"expected did or an event verb, found {token.describe()}", ["did", *sorted(self.aliases)]
            )
        where = self.where()
        op, point = self.time_point()
        return self.mark(self.build(which_tok, EventTime, which, event, op, point, where), event=at)

    def time_point(self) -> tuple[str, TimePoint]:
        if self.peek.is_word("more", "less"):
            op = "before" if self.advance().is_word("more") else "after"
            self.expect("than")
            days = self.days()
            self.expect("ago")
            return op, DaysAgo(days)
        if not self.peek.is_word("before", "after"):
            found = self.peek.describe()
            self.fail(
                f"expected before or after, found {found}", ["before", "after", "more than", "less than"]
            )
        op = self.advance().text.lower()
        if self.peek.kind == "number":
            days = self.days()
            self.expect("ago")
            return op, DaysAgo(days)
        return op, self.date()

    def engagement(self, channel: str, action: str) -> Node:
        at = self.tokens[self.pos - 1]
        campaign: str | None = None
        campaign_tok = at
        if self.accept("campaign"):
            campaign, campaign_tok = self.string("a campaign name")
        count, window = self.count_window()
        node = self.build(
            at, Engagement, action, None if channel == "message" else channel, campaign, count, window
        )
        return self.mark(node, campaign=campaign_tok)

    # ---- consent, membership, place, buckets -------------------------------------------------------------

    def channel(self) -> str:
        token = self.peek
        if not token.is_word(*CHANNELS):
            self.fail(f"expected a channel, found {token.describe()}", CHANNELS)
        self.advance()
        return token.text.lower()

    def subscription(self) -> Node:
        state = self.advance().text.lower()
        self.expect("to" if state == "subscribed" else "from")
        channel = self.channel()
        topic: str | None = None
        topic_tok = self.peek
        if self.accept("topic"):
            topic, topic_tok = self.string("a topic name")
        return self.mark(Subscription(channel, state, topic), topic=topic_tok)  # type: ignore[arg-type]

    def within(self) -> Node:
        self.advance()
        at = self.peek
        km = self.number("a distance in km")
        self.expect("km")
        self.expect("of")
        if self.accept("store"):
            name, name_tok = self.string("a store name")
            return self.mark(self.build(at, Within, km, Store(name)), store=name_tok)
        point_tok = self.expect_punct("(")
        lat = self.number("a latitude")
        self.expect_punct(",")
        lon = self.number("a longitude")
        self.expect_punct(")")
        return self.build(at, Within, km, self.build(point_tok, Point, lat, lon))

    def bucket(self) -> Node:
        self.advance()
        self.expect("bucket")
        token = self.peek
        if token.kind != "op" or token.value not in BUCKET_OPS:
            self.fail(f"expected <, <=, > or >=, found {token.describe()}", BUCKET_OPS)
        self.advance()
        at = self.peek
        percent = self.number("a percentage")
        self.expect_punct("%")
        seed: str | None = None
        if self.accept("seed"):
            seed, _ = self.string("a seed")
        return self.build(at, RandomBucket, token.value, percent, seed)
