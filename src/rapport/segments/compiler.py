"""The segment compiler: a pure function from an AST to a SQLAlchemy Core condition over a profiles alias.

No session, no I/O: everything the condition needs from outside (workspace, now, the catalogue, ids of named
segments and campaigns) comes in a ``Scope``. Every literal is a bound parameter; the JSON, date, distance and
bucket pieces render per dialect (``rapport.segments.portable``), so one expression answers the same on SQLite
and PostgreSQL — and the same as the evaluator, which the tests check with hypothesis.

Example::

    profiles = Profile.__table__.alias("p")
    condition = compile_segment(tree, scope=Scope(workspace_id=1, now=now), profiles=profiles)
    select(func.count()).select_from(profiles).where(profiles.c.workspace_id == 1, condition)

Design for speed (B4): event, message, consent and membership conditions are ``id IN (subquery)`` over the
``(workspace_id, event, timestamp, profile_id)`` index (grouped with HAVING for counts), so the database builds
one set per condition rather than probing per profile; only trait comparisons read JSON per row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, cast
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    String,
    Table,
    and_,
    bindparam,
    case,
    false,
    func,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from rapport.kit.clock import as_utc
from rapport.models import Event, Profile, ProfileScores, SegmentMember
from rapport.models import Subscription as SubscriptionRow
from rapport.segments import indexes, portable
from rapport.segments.ast import (
    CHANNELS,
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

EVENTS = cast(Table, Event.__table__)
PROFILES = cast(Table, Profile.__table__)
SCORES = cast(Table, ProfileScores.__table__)
SUBSCRIPTIONS = cast(Table, SubscriptionRow.__table__)
MEMBERS = cast(Table, SegmentMember.__table__)
#: Where a profile's location lives (numbers in ``profiles.traits``), as the synthetic data and imports write it.
LATITUDE, LONGITUDE = "latitude", "longitude"

#: The seam for computed traits that are not materialised in ``profiles.computed`` (windowed ones, from
#: ``rapport.process``' ``computed_expression(definition, profile_id_col, now)``): ``(name, profile_id_column,
#: now) -> (JSON document expression, path of the value in it)``, or None to read ``profiles.computed[name]``.
ComputedResolver = Callable[
    [str, ColumnElement[Any], datetime], tuple[ColumnElement[Any], tuple[str, ...]] | None
]


@dataclass(frozen=True)
class Scope:
    """What a condition needs besides the AST: the workspace, the time, names resolved to ids."""

    workspace_id: int
    now: datetime
    catalog: Catalog | None = None
    seed: str = ""
    segment_ids: Mapping[str, int] = field(default_factory=dict)
    campaign_ids: Mapping[str, int] = field(default_factory=dict)
    computed: ComputedResolver | None = None
    #: True: probe each profile's own rows (EXISTS on the profile indexes) — for re-evaluating a few
    #: profiles in real time; False: build one id set per condition — for counting a whole workspace.
    per_profile: bool = False


def compile_segment(node: Node, *, scope: Scope, profiles: FromClause) -> ColumnElement[bool]:
    """Return the condition a row of ``profiles`` (an alias of the profiles table) meets when it matches."""
    if scope.now.tzinfo is None:
        raise SegmentError("now must be an aware datetime")
    condition, _nullable = _Compiler(scope, profiles).condition(node)
    return condition


# A compiled condition and whether it may be NULL (then a negation must treat NULL as false).
_Cond = tuple[ColumnElement[Any], bool]


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, date):
        return "date"
    return "string"


def _bind(value: Scalar) -> ColumnElement[Any]:
    if isinstance(value, bool):
        return bindparam(None, value, type_=Boolean())
    if isinstance(value, int | float):
        return bindparam(None, float(value), type_=Float())
    if isinstance(value, date):
        return bindparam(None, value, type_=Date())
    return bindparam(None, value, type_=String())


def _cost(node: Node) -> int:
    """A rough per-row cost rank of a condition (stable sort keeps the author's order within a rank)."""
    if isinstance(node, And | Or):
        return max(_cost(item) for item in node.items)
    if isinstance(node, Not):
        return _cost(node.item)
    if isinstance(node, Did | EventTime | Engagement | Subscription | InSegment):
        return 0
    if isinstance(node, IsSet | Compare):
        return 1
    return 2


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _end_of(day: date) -> datetime | None:
    """The instant the day after ``day`` starts; None after 9999-12-31, the last day a datetime can hold."""
    return None if day == date.max else _start_of(day + timedelta(days=1))


@lru_cache(maxsize=64)
def _dates_by_zone(now: datetime) -> tuple[date, tuple[tuple[date, tuple[str, ...]], ...]]:
    """Today in UTC, and the other local dates at ``now`` with the zones that are on them."""
    utc_today = now.date()
    others: dict[date, list[str]] = {}
    for name in sorted(available_timezones()):
        try:
            local = now.astimezone(ZoneInfo(name)).date()
        except (ValueError, OSError):
            continue
        if local != utc_today:
            others.setdefault(local, []).append(name)
    return utc_today, tuple((day, tuple(names)) for day, names in sorted(others.items()))


def _month_days(today: date, first: int, last: int) -> list[str] | None:
    """Month-days whose anniversary falls in ``today+first … today+last``; None when every date does."""
    if last - first + 1 >= 366:
        return None
    found: set[str] = set()
    for offset in range(first, last + 1):
        day = today + timedelta(days=offset)
        found.add(day.strftime("%m-%d"))
        leap = day.year % 4 == 0 and (day.year % 100 != 0 or day.year % 400 == 0)
        if day.month == 2 and day.day == 28 and not leap:
            found.add("02-29")  # 29 February birthdays fall on the 28th in other years
    return sorted(found)


class _Compiler:
    def __init__(self, scope: Scope, profiles: FromClause) -> None:
        self.scope = scope
        self.now = as_utc(scope.now)
        self.p = profiles
        self.id = profiles.c.id

    # ---- boolean structure ----------------------------------------------------------------------------

    def condition(self, node: Node) -> _Cond:
        if isinstance(node, And | Or):
            # cheapest first: SQL engines mostly evaluate terms in order and stop at the first false (and)
            # or true (or); index-backed id sets cost far less per row than parsing JSON
            parts = [self.condition(item) for item in sorted(node.items, key=_cost)]
            joined = and_(*(c for c, _ in parts)) if isinstance(node, And) else or_(*(c for c, _ in parts))
            return joined, any(nullable for _, nullable in parts)
        if isinstance(node, Not):
            inner, nullable = self.condition(node.item)
            return not_(func.coalesce(inner, false()) if nullable else inner), False
        return self.leaf(node)

    def leaf(self, node: Node) -> _Cond:
        if isinstance(node, Compare):
            values = node.value if isinstance(node.value, tuple) else (node.value,)
            kinds = ",".join(_kind(v) for v in values)

            def compare(doc: ColumnElement[Any], keys: tuple[str, ...]) -> ColumnElement[Any]:
                return portable.json_compare(doc, keys, node.op, kinds, [_bind(v) for v in values])

            indexed = self.indexed(node, kinds, values)
            if indexed is not None:
                return indexed, False
            return self.first_set(node.field, compare), True
        if isinstance(node, IsSet):
            present = or_(*(portable.json_is_set(doc, keys) for doc, keys in self.fields(node.field)))
            return (present if node.is_set else not_(present)), False
        if isinstance(node, DateRelative):
            return self.date_relative(node), True
        if isinstance(node, Did):
            conditions = [EVENTS.c.event == node.event, *self.window(node.window)]
            if node.where is not None:
                conditions.append(self.properties(node.where))
            return self.counted(conditions, node.count), False
        if isinstance(node, EventTime):
            return self.event_time(node), False
        if isinstance(node, Engagement):
            return self.engagement(node), False
        if isinstance(node, Subscription):
            return self.subscription(node), False
        if isinstance(node, InSegment):
            segment_id = self.scope.segment_ids.get(node.segment)
            if segment_id is None:
                return false(), False
            members = select(MEMBERS.c.profile_id).where(MEMBERS.c.segment_id == segment_id)
            return self.has(members, MEMBERS.c.profile_id), False
        if isinstance(node, Within):
            return self.within(node), True
        if isinstance(node, RandomBucket):
            return self.bucket(node), False
        raise TypeError(f"not a segment node: {node!r}")

    # ---- traits ---------------------------------------------------------------------------------------

    def fields(self, name: str) -> list[tuple[ColumnElement[Any], tuple[str, ...]]]:
        """The JSON documents and paths that may hold profile field ``name``, first set wins
        (``catalog.field_paths``: the whole name, then a dotted trait name's nested path)."""
        info = self.scope.catalog.field_info(name) if self.scope.catalog is not None else None
        if info is not None and info.source == "score":
            # Scores live in a narrow table of their own (``ProfileScores``); no row reads as not set.
            # Correlated explicitly: in a table function's argument (``json_each`` of a list) the
            # automatic correlation would not reach the profile of the enclosing query.
            doc = (
                select(SCORES.c.scores)
                .where(SCORES.c.profile_id == self.id)
                .correlate_except(SCORES)
                .scalar_subquery()
            )
            return [(doc, (name,))]
        if info is not None and info.source == "computed":
            if self.scope.computed is not None:
                located = self.scope.computed(name, self.id, self.now)
                if located is not None:
                    return [located]
            return [(self.p.c.computed, (name,))]
        return [(self.p.c.traits, keys) for keys in field_paths(name, self.scope.catalog)]

    def indexed(self, node: Compare, kinds: str, values: tuple[Scalar, ...]) -> ColumnElement[Any] | None:
        """A comparison on an indexed field (``rapport.segments.indexes``) as the set of ids it holds for, read
        from the index alone (one disjoint arm per JSON type for ``in``); None for any other comparison.

        Only for whole-workspace counts: a probe of a few profiles reads their rows anyway.
        """
        if self.scope.per_profile:
            return None
        places = self.fields(node.field)
        if len(places) != 1:
            return None
        doc, keys = places[0]
        column = next((c for c in (self.p.c.traits, self.p.c.computed) if doc is c), None)
        if column is None:
            return None
        kind = indexes.profile_field_type(column.name, keys)
        if kind is None or node.op not in indexes.OPERATORS[kind] or {*kinds.split(",")} != {kind}:
            return None
        q = PROFILES.alias()
        arms = portable.json_compare_arms(q.c[column.name], keys, node.op, kinds, [_bind(v) for v in values])
        selects = [select(q.c.id).where(q.c.workspace_id == self.scope.workspace_id, arm) for arm in arms]
        return portable.Member(self.id, selects[0] if len(selects) == 1 else union_all(*selects))

    def first_set(
        self, name: str, read: Callable[[ColumnElement[Any], tuple[str, ...]], ColumnElement[Any]]
    ) -> ColumnElement[Any]:
        """``read`` applied to the first place holding field ``name`` (the only one for most fields)."""
        places = self.fields(name)
        if len(places) == 1:
            return read(*places[0])
        (whole_doc, whole), (doc, nested) = places
        return case((portable.json_is_set(whole_doc, whole), read(whole_doc, whole)), else_=read(doc, nested))

    def date_relative(self, node: DateRelative) -> ColumnElement[Any]:
        day = self.first_set(node.field, portable.json_date)
        utc_today, others = _dates_by_zone(self.now)
        if not others:
            return self.on_day(node, day, utc_today)
        timezone = self.p.c.timezone
        branches = [
            (timezone.in_([bindparam(None, z, type_=String()) for z in zones]), self.on_day(node, day, local))
            for local, zones in others
        ]
        return case(*branches, else_=self.on_day(node, day, utc_today))

    def on_day(self, node: DateRelative, day: ColumnElement[Any], today: date) -> ColumnElement[Any]:
        def d(offset: int) -> ColumnElement[Any]:
            return bindparam(None, today + timedelta(days=offset), type_=Date())

        n = node.days
        if node.anniversary:
            first, last = {"today": (0, 0), "in next": (0, n), "in last": (-n, 0)}[node.kind]
            month_days = _month_days(today, first, last)
            if month_days is None:
                return day.is_not(None)
            return portable.month_day(day).in_([bindparam(None, md, type_=String()) for md in month_days])
        if node.kind == "today":
            return day == d(0)
        if node.kind == "in next":
            return and_(day >= d(0), day <= d(n))
        if node.kind == "in last":
            return and_(day >= d(-n), day <= d(0))
        if node.kind == "more than ago":
            return day < d(-n)
        return and_(day > d(-n), day <= d(0))

    def within(self, node: Within) -> ColumnElement[Any]:
        target = node.target
        if isinstance(target, Point):
            place = (target.lat, target.lon)
        else:
            stores = self.scope.catalog.stores if self.scope.catalog is not None else None
            if stores is None or target.name not in stores:
                raise SegmentError(f"unknown store {target.name!r}: the catalogue does not place it")
            place = stores[target.name]
        lat = portable.json_number(self.p.c.traits, (LATITUDE,))
        lon = portable.json_number(self.p.c.traits, (LONGITUDE,))
        distance = portable.distance_km(
            lat,
            lon,
            bindparam(None, float(place[0]), type_=Float()),
            bindparam(None, float(place[1]), Float()),
        )
        return distance <= bindparam(None, node.km, type_=Float())

    def bucket(self, node: RandomBucket) -> ColumnElement[Any]:
        seed = node.seed if node.seed is not None else self.scope.seed
        number = portable.bucket_number(bindparam(None, seed, type_=String()), self.id)
        # bucket = n × 100 / 2**32 exactly (a power-of-two division), so compare n × 100 with percent × 2**32
        threshold = bindparam(None, node.percent * 2**32, type_=Float())
        scaled = number * 100
        return {
            "<": lambda: scaled < threshold,
            "<=": lambda: scaled <= threshold,
            ">": lambda: scaled > threshold,
            ">=": lambda: scaled >= threshold,
        }[node.op]()

    # ---- events ---------------------------------------------------------------------------------------

    def window(self, window: Window) -> list[ColumnElement[Any]]:
        ts = EVENTS.c.timestamp
        if isinstance(window, Ever):
            return []
        if isinstance(window, InLast):
            length = (
                timedelta(days=window.amount) if window.unit == "days" else timedelta(hours=window.amount)
            )
            return [ts > self.now - length, ts <= self.now]
        assert isinstance(window, Between)
        end = _end_of(window.end)
        return [ts >= _start_of(window.start), *([] if end is None else [ts < end])]

    def properties(self, node: Node) -> ColumnElement[Any]:
        """A ``where`` clause over ``events.properties``; dotted names are nested paths."""
        if isinstance(node, And):
            return and_(*(self.properties(item) for item in node.items))
        if isinstance(node, Or):
            return or_(*(self.properties(item) for item in node.items))
        if isinstance(node, Not):
            return not_(func.coalesce(self.properties(node.item), false()))
        assert isinstance(node, Compare | IsSet)
        keys = tuple(node.field.split("."))
        if isinstance(node, IsSet):
            present = portable.json_is_set(EVENTS.c.properties, keys)
            return present if node.is_set else not_(present)
        assert isinstance(node, Compare)
        values = node.value if isinstance(node.value, tuple) else (node.value,)
        kinds = ",".join(_kind(v) for v in values)
        return portable.json_compare(EVENTS.c.properties, keys, node.op, kinds, [_bind(v) for v in values])

    def has(self, query: Any, profile_id: ColumnElement[Any]) -> ColumnElement[Any]:
        """The profile is among the ids ``query`` selects: one set for everyone, or a probe per profile."""
        if self.scope.per_profile:
            return query.where(profile_id == self.id).exists()
        return portable.Member(self.id, query)

    def matching(self, conditions: list[ColumnElement[Any]]) -> Any:
        return select(EVENTS.c.profile_id).where(
            EVENTS.c.workspace_id == self.scope.workspace_id, *conditions, EVENTS.c.profile_id.is_not(None)
        )

    def at_least(self, conditions: list[ColumnElement[Any]], n: int) -> ColumnElement[Any]:
        if n <= 0:
            return true()
        query = self.matching(conditions)
        if n > 1:
            query = query.group_by(EVENTS.c.profile_id).having(func.count() >= n)
        return self.has(query, EVENTS.c.profile_id)

    def counted(self, conditions: list[ColumnElement[Any]], count: Count) -> ColumnElement[Any]:
        if count.op == "at least":
            return self.at_least(conditions, count.n)
        if count.op == "at most":
            return not_(self.at_least(conditions, count.n + 1))
        if count.n == 0:
            return not_(self.at_least(conditions, 1))
        query = self.matching(conditions).group_by(EVENTS.c.profile_id).having(func.count() == count.n)
        return self.has(query, EVENTS.c.profile_id)

    def event_time(self, node: EventTime) -> ColumnElement[Any]:
        conditions = [EVENTS.c.event == node.event]
        if node.where is not None:
            conditions.append(self.properties(node.where))
        ts = EVENTS.c.timestamp
        if isinstance(node.point, DaysAgo):
            point = self.now - timedelta(days=node.point.days)
            strict = True
        elif node.op == "before":
            point, strict = _start_of(node.point), True
        else:
            end = _end_of(node.point)
            if end is None:
                return false()  # no instant comes after the last day there is
            point, strict = end, False
        after = (ts > point) if strict else (ts >= point)
        if (node.which, node.op) == ("first", "before"):
            return self.at_least([*conditions, ts < point], 1)
        if (node.which, node.op) == ("last", "after"):
            return self.at_least([*conditions, after], 1)
        extreme = func.min(ts) if node.which == "first" else func.max(ts)
        having = (
            ((extreme > point) if strict else (extreme >= point)) if node.op == "after" else extreme < point
        )
        grouped = self.matching(conditions).group_by(EVENTS.c.profile_id).having(having)
        return self.has(grouped, EVENTS.c.profile_id)

    def engagement(self, node: Engagement) -> ColumnElement[Any]:
        channels = [node.channel] if node.channel is not None else list(CHANNELS)
        names = [f"{channel}_{node.action}" for channel in channels]
        conditions = [EVENTS.c.event.in_(names), *self.window(node.window)]
        if node.campaign is not None:
            campaign_id = self.scope.campaign_ids.get(node.campaign)
            if campaign_id is None:
                conditions.append(false())
            else:
                conditions.append(
                    portable.json_compare(
                        EVENTS.c.properties, ("campaign_id",), "=", "number", [_bind(campaign_id)]
                    )
                )
        return self.counted(conditions, node.count)

    # ---- consent ----------------------------------------------------------------------------------------

    def subscription(self, node: Subscription) -> ColumnElement[Any]:
        # the consent domain's rows: (channel, "") for the channel, (channel, topic) for a topic on it, and
        # ("", topic) for a topic on every channel, which holds where the channel has no row of its own
        def rows(channel: str, topic: str, state: str | None = None) -> ColumnElement[Any]:
            query = select(SUBSCRIPTIONS.c.profile_id).where(
                SUBSCRIPTIONS.c.workspace_id == self.scope.workspace_id,
                SUBSCRIPTIONS.c.channel == channel,
                SUBSCRIPTIONS.c.topic == topic,
            )
            if state is not None:
                query = query.where(SUBSCRIPTIONS.c.state == state)
            return self.has(query, SUBSCRIPTIONS.c.profile_id)

        channel = node.channel
        if node.topic is None:
            return rows(channel, "", node.state)
        topic = node.topic

        def topic_is(state: str) -> ColumnElement[Any]:
            return or_(rows(channel, topic, state), and_(not_(rows(channel, topic)), rows("", topic, state)))

        if node.state == "unsubscribed":
            return or_(rows(channel, "", "unsubscribed"), topic_is("unsubscribed"))
        topic_yes = topic_is("subscribed")
        opt_out = self.scope.catalog is not None and topic in self.scope.catalog.opt_out_topics
        if opt_out:
            topic_yes = or_(topic_yes, and_(not_(rows(channel, topic)), not_(rows("", topic))))
        return and_(rows(channel, "", "subscribed"), topic_yes)
