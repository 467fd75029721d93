"""Membership that follows the data: re-evaluate segments for changed profiles, refresh time-based segments,
record entries and exits, and publish them.

- ``after_apply`` (registered on the collect processor with ``register(hooks_for(runtime))``) re-evaluates,
  for the batch's profiles only, the active segments whose dependencies the batch can affect (its events,
  changed traits, merges, consent, other segments that changed), in dependency order.
- ``RefreshTick`` (a worker tick) refreshes whole segments that change with time alone (``by_time``: rolling
  windows, ``N days ago``, date-relative traits) every ``interval``, and every segment every ``full_interval``
  (catches changes that bypass the processor: message feedback, consent changes made in the UI or API).
- Every entry and exit becomes a ``segment_members`` row change, a ``segment_entered``/``segment_exited`` event
  on the profile (properties ``segment_id``, ``segment_name``) and a ``MembershipChange`` published on the
  runtime's ``MembershipBus``. Subscribers run inside the transaction that made the change (they flush, never
  commit), so work they enqueue commits or rolls back with it::

      bus_for(runtime).subscribe(lambda db, changes: enqueue_triggers(db, changes))
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Integer, bindparam, case, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from rapport.accounts import definitions
from rapport.collect.processor import BatchApplied, ProcessingHooks
from rapport.models import ComputedTrait, Event, Segment, Topic, Workspace
from rapport.process import computed_sql, traits_service
from rapport.process import repository as process_repository
from rapport.runtime import Runtime
from rapport.segments import catalog_service, portable, repository
from rapport.segments.ast import Node
from rapport.segments.catalog import Catalog
from rapport.segments.codec import from_json
from rapport.segments.compiler import LATITUDE, LONGITUDE, ComputedResolver, Scope
from rapport.segments.dependencies import Dependencies, dependencies

log = logging.getLogger("rapport.segments.realtime")
BUS_PORT = "segments.bus"


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """A profile entered or exited a segment at ``at``."""

    workspace_id: int
    segment_id: int
    segment_name: str
    profile_id: int
    kind: Literal["entered", "exited"]
    at: datetime


Subscriber = Callable[[Session, list[MembershipChange]], None]


@dataclass
class MembershipBus:
    """In-process publish/subscribe of membership changes (campaign triggers subscribe here)."""

    subscribers: list[Subscriber] = field(default_factory=list)

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(db, changes)`` for every batch of changes, inside the changing transaction."""
        self.subscribers.append(subscriber)

    def publish(self, db: Session, changes: list[MembershipChange]) -> None:
        """Hand ``changes`` to every subscriber; one failing subscriber does not stop the others."""
        if not changes:
            return
        for subscriber in self.subscribers:
            try:
                subscriber(db, changes)
            except Exception:
                log.exception("segment membership subscriber failed")


def bus_for(runtime: Runtime) -> MembershipBus:
    """Return the runtime's membership bus (created on first use)."""
    bus = runtime.ports.get(BUS_PORT)
    if bus is None:
        bus = runtime.ports[BUS_PORT] = MembershipBus()
    return cast(MembershipBus, bus)


def scope_for(
    db: Session,
    *,
    workspace_id: int,
    now: datetime,
    seed: str = "",
    catalog: Catalog | None = None,
    per_profile: bool = False,
) -> Scope:
    """The compile scope of a workspace: catalogue, names of segments and campaigns resolved to ids, the time."""
    return Scope(
        workspace_id=workspace_id,
        now=now,
        computed=windowed_traits(db, workspace_id=workspace_id),
        catalog=catalog
        if catalog is not None
        else catalog_service.compile_catalog(db, workspace_id=workspace_id),
        seed=seed,
        segment_ids=repository.segment_ids(db, workspace_id=workspace_id),
        campaign_ids=repository.campaign_ids(db, workspace_id=workspace_id),
        per_profile=per_profile,
    )


#: How long the real-time path may reuse a workspace's compile catalogue and windowed-trait SQL (see
#: ``realtime_scope``): their definitions are checked on every batch, the keys the catalogue samples from the
#: data (which computed and score keys profiles carry) are taken again after this many seconds.
SCOPE_REUSE_SECONDS = 5.0
_SCOPE_PORT = "segments.realtime_scope"


@dataclass(frozen=True, slots=True)
class _Reusable:
    """A workspace's catalogue and windowed-trait resolver, the definitions they were built from, and when
    (monotonic seconds)."""

    definitions: tuple[Any, ...]
    built: float
    catalog: Catalog
    computed: ComputedResolver | None


def definitions_key(db: Session, *, workspace_id: int) -> tuple[Any, ...]:
    """What the compile catalogue and the windowed traits are built from besides sampled data, in one small
    read: the computed trait definitions (every change bumps a version), the topics (added, never edited)
    and the workspace settings (stores, purchase settings)."""
    row = db.connection().execute(_DEFINITIONS, {"ws": workspace_id}).one()
    return (*row[:-1], json.dumps(row[-1], sort_keys=True, default=str))


def _definitions_statement() -> Any:
    traits = select(
        func.count(), func.coalesce(func.sum(ComputedTrait.version), 0), func.max(ComputedTrait.id)
    ).where(ComputedTrait.workspace_id == bindparam("ws"))
    topics = select(
        func.count(),
        func.max(Topic.id),
        func.count(Topic.archived_at),
        func.coalesce(func.sum(case((Topic.opt_in, 1), else_=0)), 0),
    ).where(Topic.workspace_id == bindparam("ws"))
    columns = [part.scalar_subquery() for part in _split(traits)] + [
        part.scalar_subquery() for part in _split(topics)
    ]
    return select(*columns, Workspace.settings).where(Workspace.id == bindparam("ws"))


def _split(query: Any) -> list[Any]:
    """One single-column select per column of ``query`` (scalar subqueries take one column each)."""
    return [query.with_only_columns(column) for column in query.selected_columns]


_DEFINITIONS = _definitions_statement()


def realtime_scope(
    db: Session,
    runtime: Runtime,
    *,
    workspace_id: int,
    now: datetime,
    segments: Sequence[Segment | SegmentDef],
    campaigns: bool = True,
) -> Scope:
    """The per-profile compile scope of the real-time path, ``scope_for``'s, built from fewer statements.

    Segment ids come from ``segments`` (the workspace's active segments, already read); campaign ids are
    read only with ``campaigns`` (some segment names a campaign: an engagement condition). The catalogue and
    the windowed-trait SQL are reused from the workspace's previous batch while the definitions they come
    from are unchanged (their key, ``definitions_key``, is read again only when the workspace's definitions
    revision moved: ``accounts.definitions``) and for at most ``SCOPE_REUSE_SECONDS``: building them
    takes eight statements, two of them sampling profiles, which was a third of a small batch's time on
    PostgreSQL. The sampled keys may thus lag the data by that long; ``RefreshTick`` and the saved-segment
    paths always build a fresh scope.
    """
    cache = cast(dict[int, _Reusable], runtime.ports.setdefault(_SCOPE_PORT, {}))
    # the definitions' own key, read again only when their revision moved (accounts.definitions)
    key = definitions.cached(
        db, workspace_id, "segments.definitions_key", lambda: definitions_key(db, workspace_id=workspace_id)
    )
    held = cache.get(workspace_id)
    clock = time.monotonic()
    if held is None or held.definitions != key or clock - held.built >= SCOPE_REUSE_SECONDS:
        held = _Reusable(
            definitions=key,
            built=clock,
            catalog=catalog_service.compile_catalog(db, workspace_id=workspace_id),
            computed=windowed_traits(db, workspace_id=workspace_id),
        )
        cache[workspace_id] = held
    return Scope(
        workspace_id=workspace_id,
        now=now,
        computed=held.computed,
        catalog=held.catalog,
        segment_ids={segment.name: segment.id for segment in segments},
        campaign_ids=repository.campaign_ids(db, workspace_id=workspace_id) if campaigns else {},
        per_profile=True,
    )


def windowed_names(db: Session, *, workspace_id: int) -> set[str]:
    """Return the names of the workspace's windowed computed traits."""
    return set(
        db.scalars(
            select(ComputedTrait.name).where(
                ComputedTrait.workspace_id == workspace_id,
                ComputedTrait.archived_at.is_(None),
                ComputedTrait.window_days.is_not(None),
            )
        )
    )


def windowed_traits(db: Session, *, workspace_id: int) -> ComputedResolver | None:
    """The compiler's seam for windowed computed traits: ``rapport.process``' SQL for each definition."""
    rows = list(
        db.scalars(
            select(ComputedTrait).where(
                ComputedTrait.workspace_id == workspace_id,
                ComputedTrait.archived_at.is_(None),
                ComputedTrait.window_days.is_not(None),
            )
        )
    )
    if not rows:
        return None
    specs = {row.name: traits_service.spec_of(row) for row in rows}
    purchase = process_repository.purchase_settings(db, workspace_id)

    def resolve(
        name: str, profile_id: ColumnElement[Any], now: datetime
    ) -> tuple[ColumnElement[Any], tuple[str, ...]] | None:
        spec = specs.get(name)
        if spec is None:
            return None
        return portable.json_wrap(
            computed_sql.computed_expression(spec, profile_id, now, purchase=purchase)
        ), ("v",)

    return resolve


def reconcile(
    db: Session,
    segment: Segment,
    scope: Scope,
    *,
    among: Sequence[int] | None = None,
    emit: bool = True,
    bus: MembershipBus | None = None,
) -> list[MembershipChange]:
    """Bring a segment's members in line with its definition (for ``among`` only, when given).

    With ``emit`` the entries and exits are recorded as events and published; without (a new or edited
    definition: the baseline) only the membership rows change.
    """
    tree = from_json(segment.ast)
    matching = repository.matching_ids(db, tree, replace(scope, seed=segment.seed), among=among)
    current = repository.member_ids(db, segment_id=segment.id, among=among)
    return apply_changes(
        db,
        segment,
        entered=matching - current,
        exited=current - matching,
        at=scope.now,
        emit=emit,
        bus=bus,
        recount=among is None,
    )


#: A segment's member count moved by a few entries and exits (built once, see ``apply_changes``).
_ADD_MEMBERS = (
    update(Segment)
    .where(Segment.id == bindparam("segment"))
    .values(member_count=func.coalesce(Segment.member_count, 0) + bindparam("delta", type_=Integer))
    .execution_options(synchronize_session=False)
)


def apply_changes(
    db: Session,
    segment: Segment | SegmentDef,
    *,
    entered: set[int],
    exited: set[int],
    at: datetime,
    emit: bool = True,
    bus: MembershipBus | None = None,
    recount: bool = False,
    counters: bool = True,
) -> list[MembershipChange]:
    """Write entries and exits: member rows, counters (unless ``counters=False``) and (with ``emit``)
    timeline events and the bus. ``recount`` needs the ORM row (it sets its counters)."""
    if entered:
        repository.add_members(
            db, workspace_id=segment.workspace_id, segment_id=segment.id, profile_ids=entered, at=at
        )
    if exited:
        repository.remove_members(db, segment_id=segment.id, profile_ids=exited)
    if counters and recount:
        if not isinstance(segment, Segment):
            raise TypeError("recounting a segment needs its ORM row")
        segment.member_count = repository.set_counters(db, segment_id=segment.id, at=at)
        segment.refreshed_at = at
    elif counters and (entered or exited):
        # a few profiles moved: add the difference in SQL instead of counting every member again per batch.
        # refreshed_at stays: it marks the last whole evaluation, which moves time windows for everyone; a
        # busy segment's real-time entries must not postpone it (people leave "last 7 days" on time).
        db.execute(_ADD_MEMBERS, {"segment": segment.id, "delta": len(entered) - len(exited)})
        if isinstance(segment, Segment):  # a kept snapshot (SegmentDef) holds no counter
            db.expire(segment, ["member_count"])
    if not emit or not (entered or exited):
        return []
    repository.record_changes(
        db,
        workspace_id=segment.workspace_id,
        segment_id=segment.id,
        segment_name=segment.name,
        entered=entered,
        exited=exited,
        at=at,
    )
    ws, sid, name = segment.workspace_id, segment.id, segment.name
    changes = [MembershipChange(ws, sid, name, pid, "entered", at) for pid in sorted(entered)]
    changes += [MembershipChange(ws, sid, name, pid, "exited", at) for pid in sorted(exited)]
    if bus is not None:
        bus.publish(db, changes)
    return changes


#: Profiles whose membership one write transaction changes: short transactions keep SQLite's write lock
#: free for ingest between them while a big segment is (re)built.
WRITE_CHUNK = 2000
BUILDING = "building"


def write_diff(
    runtime: Runtime,
    segment: Segment,
    *,
    matching: set[int],
    before: set[int],
    at: datetime,
    emit: bool,
    bus: MembershipBus | None = None,
    finish: bool = True,
) -> tuple[list[MembershipChange], bool]:
    """Move a segment's members from ``before`` (read earlier) to ``matching`` in short write transactions.

    Each transaction takes up to ``WRITE_CHUNK`` profiles whose membership differs, re-reads their current
    membership and leaves alone those the real-time hook moved since ``before`` was read. A last one stores
    the counters (and marks a building segment active). Returns the changes and False when the segment was
    archived or redefined meanwhile (the rest is then left to whoever changed it).
    """
    candidates = sorted(matching ^ before)
    changes: list[MembershipChange] = []

    def live_segment(db: Session) -> Segment | None:
        live = repository.get_segment(db, workspace_id=segment.workspace_id, segment_id=segment.id)
        if live is None or live.archived_at is not None or live.version != segment.version:
            return None
        return live

    for start in range(0, len(candidates), WRITE_CHUNK):
        chunk = candidates[start : start + WRITE_CHUNK]
        with runtime.sessions() as db:
            live = live_segment(db)
            if live is None:
                return changes, False
            current = repository.member_ids(db, segment_id=live.id, among=chunk)
            moved = before.intersection(chunk) ^ current
            changes += apply_changes(
                db,
                live,
                entered=matching.intersection(chunk) - current - moved,
                exited=current - matching - moved,
                at=at,
                emit=emit,
                bus=bus,
                counters=False,
            )
            db.commit()
    if not finish:
        return changes, True
    with runtime.sessions() as db:
        live = live_segment(db)
        if live is None:
            return changes, False
        live.member_count = repository.set_counters(db, segment_id=live.id, at=at)
        live.refreshed_at = at
        if live.status == BUILDING:
            live.status = "active"
        db.commit()
    return changes, True


def materialise(runtime: Runtime, *, workspace_id: int, segment_id: int, at: datetime) -> int:
    """Build a saved segment's baseline membership (no entry events) off the write lock; returns members.

    The matching set is computed in a read transaction, then written by ``write_diff`` in short write
    transactions, so ingest keeps flowing while a segment of a million profiles is built.
    """
    with runtime.read_sessions() as db:
        segment = repository.get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
        if segment is None or segment.archived_at is not None:
            return 0
        scope = scope_for(db, workspace_id=workspace_id, now=at, seed=segment.seed)
        matching = repository.matching_ids(db, from_json(segment.ast), scope)
        before = repository.member_ids(db, segment_id=segment_id)
        db.expunge(segment)
    write_diff(runtime, segment, matching=matching, before=before, at=at, emit=False)
    with runtime.read_sessions() as db:
        built = repository.get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
        return built.member_count if built is not None else 0


@dataclass(frozen=True, slots=True)
class SegmentDef:
    """The columns of a segment the real-time path reads, detached from any session (kept across batches
    by ``accounts.definitions`` while the workspace's definitions are unchanged)."""

    id: int
    workspace_id: int
    name: str
    ast: dict[str, Any]
    version: int
    status: str
    seed: str


#: A segment as the evaluation helpers take it: the ORM row or its detached snapshot.
S = TypeVar("S", Segment, SegmentDef)


@dataclass(frozen=True, slots=True)
class _LiveSegments:
    """A workspace's segments as the real-time path evaluates them: every unarchived one (for the names the
    compiler resolves), and the active ones by dependency level."""

    listed: tuple[SegmentDef, ...]
    levels: tuple[tuple[tuple[SegmentDef, Node, Dependencies], ...], ...]
    engagement: bool  # some segment names a campaign (its scope must read the campaign ids)


def _live_segments(db: Session, workspace_id: int) -> _LiveSegments:
    listed = tuple(
        SegmentDef(
            id=s.id,
            workspace_id=s.workspace_id,
            name=s.name,
            ast=s.ast,
            version=s.version,
            status=s.status,
            seed=s.seed,
        )
        for s in repository.list_segments(db, workspace_id=workspace_id)
    )
    levels = _levels([s for s in listed if s.status != BUILDING])
    return _LiveSegments(
        listed=listed,
        levels=tuple(tuple(level) for level in levels),
        engagement=any(deps.messages for level in levels for _segment, _tree, deps in level),
    )


#: Parsed definitions by (segment id, version): the stored AST, its tree and its dependencies. The real-time
#: path reads every active segment for each batch; decoding and walking each AST again was ~5% of a small
#: batch. A hit is checked against the stored AST itself (one dict comparison), so another database's
#: segment with the same id and version, or a definition changed without a new version, is parsed afresh.
_PARSED: dict[tuple[int, int], tuple[Any, Node, Dependencies]] = {}
_PARSED_LIMIT = 4096


def parsed_definition(segment: Segment | SegmentDef) -> tuple[Node, Dependencies]:
    """Return the segment's tree and dependencies, decoded once per definition."""
    key = (segment.id, segment.version)
    held = _PARSED.get(key)
    if held is not None and held[0] == segment.ast:
        return held[1], held[2]
    tree = from_json(segment.ast)
    deps = dependencies(tree)
    if len(_PARSED) >= _PARSED_LIMIT:
        _PARSED.clear()
    _PARSED[key] = (segment.ast, tree, deps)
    return tree, deps


def in_dependency_order(segments: Sequence[S]) -> list[tuple[S, Node, Dependencies]]:
    """Return active segments with their trees and dependencies, every segment after those it names."""
    parsed: dict[str, tuple[S, Node]] = {}
    deps: dict[str, Dependencies] = {}
    for s in segments:
        tree, deps[s.name] = parsed_definition(s)
        parsed[s.name] = (s, tree)
    ordered: list[tuple[S, Node, Dependencies]] = []
    done: set[str] = set()

    def visit(name: str, path: frozenset[str]) -> None:
        if name in done or name in path or name not in parsed:
            return
        for other in sorted(deps[name].segments):
            visit(other, path | {name})
        done.add(name)
        segment, tree = parsed[name]
        ordered.append((segment, tree, deps[name]))

    for name in sorted(parsed):
        visit(name, frozenset())
    return ordered


def _levels(segments: Sequence[S]) -> list[list[tuple[S, Node, Dependencies]]]:
    """Group segments by dependency depth: level 0 names no segment, level n names some of level n-1."""
    depth: dict[str, int] = {}
    levels: list[list[tuple[S, Node, Dependencies]]] = []
    for segment, tree, deps in in_dependency_order(segments):
        level = 1 + max((depth[name] for name in deps.segments if name in depth), default=-1)
        depth[segment.name] = level
        while len(levels) <= level:
            levels.append([])
        levels[level].append((segment, tree, deps))
    return levels


def _affected(
    deps: Dependencies, events: set[str], traits: set[str], merged: bool, changed_segments: set[str]
) -> bool:
    location = deps.location and bool({LATITUDE, LONGITUDE} & traits)
    return bool(
        merged
        or deps.events & events
        or deps.fields & traits
        or location
        or deps.subscriptions
        or deps.segments & changed_segments
        or (deps.messages and any(name.split("_", 1)[0] in _CHANNEL_PREFIXES for name in events))
    )


_CHANNEL_PREFIXES = frozenset({"email", "sms", "push", "inapp", "webhook"})


def evaluate_batch(
    db: Session,
    runtime: Runtime,
    *,
    workspace_id: int,
    profile_ids: Iterable[int],
    event_names: set[str],
    changed_traits: set[str],
    merged: bool,
) -> list[MembershipChange]:
    """Re-evaluate, for ``profile_ids`` only, the active segments the described change can affect."""
    ids = sorted(set(profile_ids))
    if not ids:
        return []
    # read and parsed once per revision of the workspace's definitions (accounts.definitions)
    live = definitions.cached(db, workspace_id, "segments.live", lambda: _live_segments(db, workspace_id))
    if not live.levels:
        return []
    listed, levels, engagement = live.listed, live.levels, live.engagement
    now = runtime.clock.now()
    scope: Scope | None = None  # built on the first affected segment: most batches affect none
    bus = bus_for(runtime)
    changed_segments: set[str] = set()
    changes: list[MembershipChange] = []
    # one query per dependency level: a segment naming another is evaluated after it has changed
    for level in levels:
        group = [
            (segment, tree)
            for segment, tree, deps in level
            if _affected(deps, event_names, changed_traits, merged, changed_segments)
        ]
        if not group:
            continue
        if scope is None:
            scope = realtime_scope(
                db, runtime, workspace_id=workspace_id, now=now, segments=listed, campaigns=engagement
            )
        base = scope
        matching = repository.evaluate_many(
            db,
            [(tree, replace(base, seed=segment.seed)) for segment, tree in group],
            workspace_id=workspace_id,
            among=ids,
        )
        current = repository.memberships(db, segment_ids=[segment.id for segment, _ in group], among=ids)
        for (segment, _tree), found_ids in zip(group, matching, strict=True):
            members = current[segment.id]
            found = apply_changes(
                db, segment, entered=found_ids - members, exited=members - found_ids, at=now, bus=bus
            )
            if found:
                changed_segments.add(segment.name)
                changes.extend(found)
    return changes


def after_apply(batch: BatchApplied) -> None:
    """The processor hook: re-evaluate the segments this batch can affect, for its profiles only."""
    if not batch.profile_ids and not batch.merges:
        return
    known = batch.event_names
    if known is None and not repository.segment_ids(batch.db, workspace_id=batch.workspace_id):
        return  # nothing to evaluate: spare the read of the names (evaluate_batch lists the segments)
    names = set(
        known
        if known is not None
        else batch.db.scalars(
            select(Event.event)
            .where(Event.workspace_id == batch.workspace_id, Event.id.in_(batch.event_ids))
            .distinct()
        )
    ) - {None}
    traits: set[str] = set()
    for changed in batch.changed_traits.values():
        traits |= changed
    ids = set(batch.profile_ids) | {merged for _survivor, merged in batch.merges}
    evaluate_batch(
        batch.db,
        batch.runtime,
        workspace_id=batch.workspace_id,
        profile_ids=ids,
        event_names=cast(set[str], names),
        changed_traits=traits,
        merged=bool(batch.merges),
    )


def register(hooks: ProcessingHooks) -> None:
    """Register the real-time re-evaluation on the collect processor."""
    hooks.after_apply.append(after_apply)


class RefreshTick:
    """Worker tick: refresh time-based segments every ``interval`` and all segments every ``full_interval``."""

    #: Its work comes due with the clock: other worker lanes' work does not wake it and, idle, it looks
    #: again after a second (worker/runner.py).
    wakeable = False
    idle_poll_seconds = 1.0

    def __init__(
        self,
        runtime: Runtime,
        *,
        interval: timedelta = timedelta(minutes=1),
        full_interval: timedelta = timedelta(minutes=15),
    ) -> None:
        self.runtime = runtime
        self.interval = interval
        self.full_interval = full_interval

    def due(self, segment: Segment, now: datetime) -> bool:
        """Tell whether a segment needs a whole refresh at ``now``."""
        if segment.refreshed_at is None:
            return True
        age = now - segment.refreshed_at
        return age >= (self.interval if segment.by_time else self.full_interval)

    def __call__(self) -> int:
        """Refresh the segments that are due; returns how many members entered or left."""
        with self.runtime.read_sessions() as db:
            workspaces = list(db.scalars(select(Workspace.id).order_by(Workspace.id)))
        return sum(self.refresh_workspace(workspace_id) for workspace_id in workspaces)

    def refresh_workspace(self, workspace_id: int) -> int:
        """Refresh the workspace's due segments (and those naming a segment that changed), in order.

        The matching set is computed in a read transaction (SQLite's write lock is not held while the
        query runs); short write transactions then apply the difference (``write_diff``), leaving alone the
        profiles whose membership the real-time hook changed in between.
        """
        runtime = self.runtime
        now = runtime.clock.now()
        with runtime.read_sessions() as db:
            segments = repository.list_segments(db, workspace_id=workspace_id)
            if not any(self.due(segment, now) or segment.status == BUILDING for segment in segments):
                return 0  # dependants of a changed segment follow only from a due one
            scope = scope_for(db, workspace_id=workspace_id, now=now)
            ordered = in_dependency_order(segments)
        bus = bus_for(runtime)
        changed: set[str] = set()
        total = 0
        for segment, tree, deps in ordered:
            building = segment.status == BUILDING  # its baseline was left unfinished: finish it silently
            if not (building or self.due(segment, now) or deps.segments & changed):
                continue
            with runtime.read_sessions() as db:
                scope = replace(scope, segment_ids=repository.segment_ids(db, workspace_id=workspace_id))
                matching = repository.matching_ids(db, tree, replace(scope, seed=segment.seed))
                before = repository.member_ids(db, segment_id=segment.id)
            found, _done = write_diff(
                runtime, segment, matching=matching, before=before, at=now, emit=not building, bus=bus
            )
            if found:
                changed.add(segment.name)
                total += len(found)
        return total
