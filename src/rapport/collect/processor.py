"""The processor: applies pending events to profiles, in id order per workspace, in small batches.

One batch = one transaction: claim pending events (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, behind a
per-workspace advisory lock so workers never interleave one workspace's log; on SQLite the single writer
lock), resolve identities and traits in bulk (:mod:`rapport.collect.resolution`), set ``profile_id`` and
``state=PROCESSED``, run the after-apply hooks, commit. Re-running is harmless: only PENDING rows are taken.

Events carrying an erased (suppressed) identifier are deleted from the log and counted (R17): keeping them
unlinked would keep personal data the person asked us to erase. Events with no usable identifier (junk
ids only) are marked processed with no profile.

Extension points (computed traits, segments, triggers)::

    hooks = hooks_for(runtime)
    hooks.after_apply.append(lambda batch: recompute(batch.db, batch.profile_ids))
    hooks.on_merge.append(lambda db, workspace_id, survivor_id, merged_id: move_consent(...))
    hooks.on_erase.append(lambda db, workspace_id, profile_ids: delete_messages(...))
    hooks.exporters["messages"] = lambda db, workspace_id, profile_id: list_messages(...)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import Integer, Table, bindparam, delete, exists, select, text
from sqlalchemy.orm import Session

from rapport.accounts import definitions
from rapport.collect import identity as ident
from rapport.collect.ingest import PENDING_CHANNEL
from rapport.collect.resolution import (
    MergeHook,
    ProfileFacts,
    ProfileWrites,
    Resolution,
    Touch,
    bulk_update,
    resolve_batch,
)
from rapport.kit.clock import as_utc
from rapport.models import Event, Identity, Workspace
from rapport.models.event import PENDING, PROCESSED
from rapport.runtime import Runtime

log = logging.getLogger("rapport.collect.processor")

_EVENTS = cast(Table, Event.__table__)
#: Namespace of the PostgreSQL advisory locks that serialise identity writes per workspace.
LOCK_NAMESPACE = 7261
HOOKS_PORT = "collect.hooks"


@dataclass
class BatchApplied:
    """What one applied batch hands to after-apply hooks (same transaction; hooks flush, never commit)."""

    db: Session
    runtime: Runtime
    workspace_id: int
    event_ids: list[int]
    profile_ids: set[int]
    changed_traits: dict[int, set[str]]
    merges: list[tuple[int, int]]
    source: str  # "processor" | "import"
    #: The names of the batch's events (track ``event``; None for identify, page, …) when the edge knows
    #: them; None: unknown, a hook that needs them reads them (the import path).
    event_names: frozenset[str | None] | None = None
    #: The batch's linked events as (row, profile id) when the edge has them, in id order: the row has the
    #: columns ``id, type, event, channel, timestamp, properties, context, extra, source``; the profile id is
    #: the one the batch leaves the event with (a merge's survivor, as the database holds it: the
    #: resolution follows merges). None: a hook that needs them reads them back.
    linked: list[tuple[Any, int]] | None = None
    #: The workspace's settings as the batch's transaction read them, when the edge has them; None: a hook
    #: that needs them reads them.
    workspace_settings: dict[str, Any] | None = None
    #: The batch's updates of existing profiles when the edge deferred them: written between the
    #: ``before_write`` and the ``after_apply`` hooks, with the computed patches a ``before_write`` hook
    #: handed over (``takes_computed``). None: written already.
    profile_writes: ProfileWrites | None = None
    #: The batch's profiles as it leaves them (traits, phone, time zone) when the edge has them (a batch
    #: without merges); None: a hook that needs them reads them.
    profile_facts: dict[int, ProfileFacts] | None = None


AfterApplyHook = Callable[[BatchApplied], None]
#: Called when a person is erased, before the profile rows go: (db, workspace_id, profile_ids).
EraseHook = Callable[[Session, int, list[int]], None]
#: Adds a section to a GDPR export: (db, workspace_id, profile_id) -> JSON-able rows.
Exporter = Callable[[Session, int, int], Any]


@dataclass
class ProcessingHooks:
    """Extension points registered by other domains at the composition root: per applied batch, per
    merge (move consent, messages, …), per erasure (delete messages, …) and per export section."""

    #: Run before the batch's profile updates are written: hooks that only read events and
    #: ``Profile.computed`` and may hand computed patches to ``BatchApplied.profile_writes``.
    before_write: list[AfterApplyHook] = field(default_factory=list)
    after_apply: list[AfterApplyHook] = field(default_factory=list)
    on_merge: list[MergeHook] = field(default_factory=list)
    on_erase: list[EraseHook] = field(default_factory=list)
    exporters: dict[str, Exporter] = field(default_factory=dict)


@dataclass
class BatchStats:
    """Counts of one processed batch."""

    processed: int = 0
    dropped_suppressed: int = 0
    unlinked: int = 0
    created: int = 0
    merged: int = 0
    failed: int = 0


def hooks_for(runtime: Runtime) -> ProcessingHooks:
    """Return the runtime's processing hooks (created empty on first use)."""
    hooks = runtime.ports.get(HOOKS_PORT)
    if hooks is None:
        hooks = runtime.ports[HOOKS_PORT] = ProcessingHooks()
    return cast(ProcessingHooks, hooks)


def rules_for(db: Session, workspace_id: int) -> ident.IdentityRules:
    """Load a workspace's identity rules."""
    return settings_and_rules(db, workspace_id)[1]


def settings_and_rules(db: Session, workspace_id: int) -> tuple[dict[str, Any], ident.IdentityRules]:
    """Load a workspace's settings and the identity rules they hold (one query; the import's batches hand
    the settings to their hooks)."""
    row = db.execute(
        select(Workspace.settings, Workspace.default_region).where(Workspace.id == workspace_id)
    ).one()
    settings = row.settings if isinstance(row.settings, dict) else {}
    return settings, ident.rules_from_settings(row.settings, default_region=row.default_region)


def lock_workspace(db: Session, workspace_id: int, *, wait: bool) -> bool:
    """Take the workspace's identity lock for this transaction (PostgreSQL; SQLite's writer lock suffices)."""
    if db.get_bind().dialect.name != "postgresql":
        return True
    fn = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    got = db.execute(text(f"SELECT {fn}(:ns, :ws)"), {"ns": LOCK_NAMESPACE, "ws": workspace_id}).scalar()
    return True if wait else bool(got)


def _previous_id(row: Any) -> str | None:
    for bag in (row.extra, row.properties, row.context):
        if isinstance(bag, dict):
            value = bag.get("previousId", bag.get("previous_id"))
            if isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)
    return None


def touch_for_event(row: Any, rules: ident.IdentityRules, owner_kind: Callable[[str], str]) -> Touch:
    """Build the identity evidence of one event row (identify/alias/track/page/screen/group)."""
    kind = row.type
    previous = None
    if kind == "alias" and (raw := _previous_id(row)) is not None:
        previous = (owner_kind(raw), raw)
    return touch_of(
        kind, row.user_id, row.anonymous_id, row.traits, row.context, row.timestamp, rules, previous, row.id
    )


def touch_of(
    kind: str,
    user_id: Any,
    anonymous_id: Any,
    traits: Any,
    context: Any,
    timestamp: datetime,
    rules: ident.IdentityRules,
    previous: tuple[str, str] | None = None,
    event_id: int | None = None,
) -> Touch:
    """The identity evidence of an event of type ``kind`` from its fields (``previous``: an alias's
    previousId and the kind it is taken as). The import's reader calls this on its rows as they are (a
    view over each costs as much as the rest of the touch), the processor through :func:`touch_for_event`."""
    found: list[tuple[str, str]] = []
    for id_kind, raw in ((ident.USER_ID, user_id), (ident.ANONYMOUS_ID, anonymous_id)):
        if raw is None:
            continue
        try:
            value = ident.normalize(id_kind, raw, rules)
        except ident.InvalidIdentifier:
            value = None
        if value is not None:
            found.append((id_kind, value))
    picked: dict[str, Any] | None = None
    inner = context.get("traits") if kind != "group" and isinstance(context, dict) else None
    if kind == "identify":
        # RudderStack's SDKs send an identify's traits in context.traits only; the root's win a clash.
        picked = {**inner, **(traits or {})} if isinstance(inner, dict) and inner else dict(traits or {})
    elif isinstance(inner, dict):
        picked = dict(inner)
    if picked:
        extra_ids, _errors = ident.identifiers_from_traits(picked, rules)
        found.extend(extra_ids)
    alias = False
    if previous is not None:
        try:
            value = ident.normalize(previous[0], previous[1], rules)
        except ident.InvalidIdentifier:
            value = None
        if value is not None:
            found.append((previous[0], value))
            alias = True
    tz = context.get("timezone") if isinstance(context, dict) else None
    return Touch(
        identifiers=found if len(found) < 2 else ident.ordered(found, rules),
        at=timestamp if timestamp.tzinfo is UTC else as_utc(timestamp),
        traits=picked,
        alias=alias,
        event_id=event_id,
        source="event",
        timezone=tz if isinstance(tz, str) and tz else None,
    )


def alias_kinds(db: Session, workspace_id: int, rows: Sequence[Any]) -> Callable[[str], str]:
    """previousId of an alias may be a user id or an anonymous id: prefer the kind that already exists.

    ``rows`` is the whole batch the aliases arrive in: a previousId is a user id when one is stored as such
    or when an event of the batch carries it as its ``userId``. An SDK sends ``identify(u1)`` then
    ``alias(u1, u2)`` in one request, and the identify is not stored yet when the batch's touches are built;
    taking ``u1`` for an anonymous id then gave ``u2`` a profile of its own, apart from ``u1``'s."""
    previous = {p.strip() for r in rows if r.type == "alias" and (p := _previous_id(r)) is not None}
    known: set[str] = set()
    if previous:
        carried = {str(r.user_id).strip() for r in rows if r.user_id is not None}
        known = previous & carried
        unseen = previous - known
        if unseen:
            known.update(
                db.execute(
                    select(Identity.value).where(
                        Identity.workspace_id == workspace_id,
                        Identity.kind == ident.USER_ID,
                        Identity.value.in_(sorted(unseen)),
                    )
                ).scalars()
            )
    return lambda value: ident.USER_ID if value.strip() in known else ident.ANONYMOUS_ID


_PENDING_WORKSPACES = (
    select(Workspace.id)
    .where(exists().where(Event.workspace_id == Workspace.id, Event.state == PENDING))
    .order_by(Workspace.id)
)


def pending_workspaces(db: Session) -> list[int]:
    """Return the workspaces that have pending events (cheap: the partial index on pending rows).

    Asked on every worker poll: a statement built once, run on the connection (no ORM round).
    """
    return [int(ws) for (ws,) in db.connection().execute(_PENDING_WORKSPACES)]


#: A workspace's oldest pending events (built once: building a statement per batch cost more Python than
#: running it); PostgreSQL skips rows another worker holds.
_PENDING = (
    select(
        Event.id,
        Event.type,
        Event.event,
        Event.channel,
        Event.user_id,
        Event.anonymous_id,
        Event.timestamp,
        Event.traits,
        Event.context,
        Event.extra,
        Event.properties,
        Event.source,
    )
    .where(Event.workspace_id == bindparam("ws"), Event.state == PENDING)
    .order_by(Event.id)
    .limit(bindparam("limit", type_=Integer))
)
_PENDING_PG = _PENDING.with_for_update(skip_locked=True)


def process_batch(
    db: Session,
    *,
    runtime: Runtime,
    workspace_id: int,
    limit: int = 500,
    hooks: ProcessingHooks | None = None,
    now: datetime | None = None,
) -> BatchStats | None:
    """Apply up to ``limit`` pending events of one workspace in the caller's transaction.

    Returns None when another worker holds the workspace (PostgreSQL). The caller commits.
    """
    if not lock_workspace(db, workspace_id, wait=False):
        return None
    hooks = hooks or hooks_for(runtime)
    now = now or runtime.clock.now()
    stmt = _PENDING_PG if db.get_bind().dialect.name == "postgresql" else _PENDING
    rows = list(db.execute(stmt, {"ws": workspace_id, "limit": limit}))
    stats = BatchStats()
    if not rows:
        return stats
    # the batch's definitions: what the hooks build from them is reused while they are unchanged
    revision = definitions.pin(db, workspace_id)
    settings = revision.settings
    rules = definitions.cached(
        db,
        workspace_id,
        "collect.identity_rules",
        lambda: ident.rules_from_settings(revision.settings, default_region=revision.default_region),
    )
    kinds = alias_kinds(db, workspace_id, rows)
    touches = [touch_for_event(r, rules, kinds) for r in rows]
    outcome = resolve_batch(
        db,
        workspace_id=workspace_id,
        rules=rules,
        touches=touches,
        now=now,
        merge_hooks=hooks.on_merge,
        defer_writes=True,
    )
    apply_outcome(db, rows=rows, outcome=outcome, stats=stats)
    batch = BatchApplied(
        db=db,
        runtime=runtime,
        workspace_id=workspace_id,
        event_ids=[r.id for r in rows],
        profile_ids=outcome.touched,
        changed_traits=outcome.changed_traits,
        merges=outcome.merges,
        source="processor",
        event_names=frozenset(r.event for r, s in zip(rows, outcome.suppressed, strict=True) if not s),
        linked=[
            (r, pid)
            for r, pid, s in zip(rows, outcome.profile_ids, outcome.suppressed, strict=True)
            if not s and pid is not None
        ],
        workspace_settings=settings,
        profile_writes=outcome.writes,
        profile_facts=None if outcome.merges else outcome.facts,
    )
    run_hooks(hooks, batch)
    if stats.dropped_suppressed:
        log.info(
            "dropped events of erased identifiers",
            extra={"workspace_id": workspace_id, "dropped": stats.dropped_suppressed},
        )
    return stats


def run_hooks(hooks: ProcessingHooks, batch: BatchApplied) -> None:
    """Run a batch's hooks: ``before_write``, then the deferred profile updates, then ``after_apply``."""
    for hook in hooks.before_write:
        hook(batch)
    if batch.profile_writes is not None:
        batch.profile_writes.flush(batch.db)
    for hook in hooks.after_apply:
        hook(batch)


def apply_outcome(db: Session, *, rows: Sequence[Any], outcome: Resolution, stats: BatchStats) -> None:
    """Write the resolution back onto the event rows: link and mark processed, or drop suppressed ones."""
    drop = [r.id for r, s in zip(rows, outcome.suppressed, strict=True) if s]
    keep = [
        {"b_id": r.id, "b_pid": pid}
        for r, pid, s in zip(rows, outcome.profile_ids, outcome.suppressed, strict=True)
        if not s
    ]
    if drop:
        db.execute(delete(Event).where(Event.id.in_(drop)).execution_options(synchronize_session=False))
    if keep and db.get_bind().dialect.name == "postgresql":
        # one statement over two arrays: an executemany costs a round of driver work per row
        db.execute(
            _PG_MARK_PROCESSED,
            {"ids": [k["b_id"] for k in keep], "pids": [k["b_pid"] for k in keep], "state": PROCESSED},
        )
    elif keep:
        bulk_update(
            db, _EVENTS, [{"id": k["b_id"], "profile_id": k["b_pid"], "state": PROCESSED} for k in keep]
        )
    stats.processed += len(keep)
    stats.dropped_suppressed += len(drop)
    stats.unlinked += sum(1 for k in keep if k["b_pid"] is None)
    stats.created += outcome.created
    stats.merged += len(outcome.merges)


_PG_MARK_PROCESSED = text(
    "UPDATE events SET profile_id = v.pid, state = :state "
    "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:pids AS BIGINT[])) AS v(id, pid) WHERE events.id = v.id"
)


def _quarantine_one(db: Session, event_id: int, error: Exception) -> None:
    """Mark an event that cannot be applied as processed without a profile, with the error's type."""
    row = db.get(Event, event_id)
    if row is None:
        return
    row.extra = {**(row.extra or {}), "processing_error": type(error).__name__}
    row.state = PROCESSED
    db.flush()


class Handoff(Protocol):
    """Takes over, in a batch's transaction, the messages it queued for sending now, and hands them on
    once it committed: the deliverer of the same worker process (``messaging.delivery.Deliverer``), so a
    triggered message goes to its channel without waiting for the deliverer's own claim."""

    def watch(self, db: Session) -> None:
        """Start noting the messages ``db``'s transaction queues."""

    def adopt(self, db: Session) -> Callable[[], None] | None:
        """Take them over before the commit; return what to call after it (None: nothing to hand on)."""


class Processor:
    """Drains pending events; ``tick`` is registered on the worker and runs on every poll, and at once when
    ingest notifies ``wake_channel`` (PostgreSQL)."""

    wake_channel = PENDING_CHANNEL

    def __init__(
        self,
        runtime: Runtime,
        *,
        batch_size: int = 500,
        budget_seconds: float = 0.5,
        hooks: ProcessingHooks | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        self.runtime = runtime
        self.batch_size = batch_size
        self.budget_seconds = budget_seconds
        self.hooks = hooks
        self.handoff = handoff

    def run_batch(self, workspace_id: int) -> BatchStats | None:
        """Process one batch of one workspace in its own transaction; isolate a poison event if it fails.
        With a ``handoff``, the messages the batch's triggers queued are taken over before the commit and
        handed on after it."""
        with self.runtime.sessions() as db:
            try:
                if self.handoff is not None:
                    self.handoff.watch(db)
                stats = process_batch(
                    db,
                    runtime=self.runtime,
                    workspace_id=workspace_id,
                    limit=self.batch_size,
                    hooks=self.hooks,
                )
                hand_on = self.handoff.adopt(db) if self.handoff is not None else None
                db.commit()
            except Exception as exc:
                db.rollback()
                log.warning("batch failed; retrying one event at a time", exc_info=exc)
            else:
                if hand_on is not None:
                    hand_on()
                return stats
        return self._one_by_one(workspace_id)

    def _one_by_one(self, workspace_id: int) -> BatchStats:
        stats = BatchStats()
        for _ in range(self.batch_size):
            with self.runtime.sessions() as db:
                try:
                    one = process_batch(
                        db, runtime=self.runtime, workspace_id=workspace_id, limit=1, hooks=self.hooks
                    )
                    db.commit()
                except Exception as exc:
                    db.rollback()
                    one = None
                    first = db.execute(
                        select(Event.id)
                        .where(Event.workspace_id == workspace_id, Event.state == PENDING)
                        .order_by(Event.id)
                        .limit(1)
                    ).scalar()
                    if first is not None:
                        log.error("event cannot be applied", extra={"event_id": first}, exc_info=exc)
                        _quarantine_one(db, first, exc)
                        db.commit()
                        stats.failed += 1
                        continue
            if one is None or one.processed + one.dropped_suppressed == 0:
                break
            stats.processed += one.processed
            stats.dropped_suppressed += one.dropped_suppressed
        return stats

    def tick(self) -> int:
        """Process pending events of every workspace until none are left or the time budget is spent."""
        with self.runtime.read_sessions() as db:
            workspaces = pending_workspaces(db)
        deadline = time.monotonic() + self.budget_seconds
        done = 0
        first_round = True
        # The budget is checked after a first round, so a slow moment (a loaded machine, a cold connection)
        # can delay work but never make a tick with pending events report that there was nothing to do.
        while workspaces and (first_round or time.monotonic() < deadline):
            first_round = False
            still = []
            for ws in workspaces:
                stats = self.run_batch(ws)
                if stats is None:
                    continue
                moved = stats.processed + stats.dropped_suppressed + stats.failed
                done += moved
                if moved >= self.batch_size:
                    still.append(ws)
            workspaces = still
        return done

    def drain(self, *, max_rounds: int = 10_000) -> int:
        """Process until nothing is pending (tests, CLI)."""
        total = 0
        for _ in range(max_rounds):
            n = self.tick()
            total += n
            if n == 0:
                break
        return total
