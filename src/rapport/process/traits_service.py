"""Computed traits, the service: definitions, built-ins, the incremental update, backfill and reads.

Stored traits (no window, not clock-dependent) live in ``Profile.computed[name]`` with their fold state in
``Profile.computed["_state"][name]``; the processor's after-apply hook folds each batch's events into them
in the batch's transaction. Live traits (a window, or ``days_since_*``) are evaluated when read, by
:func:`read_computed` here or by :func:`rapport.process.computed_sql.computed_expression` in SQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.accounts import definitions
from rapport.collect.processor import BatchApplied, lock_workspace
from rapport.errors import Conflict, NotFound
from rapport.kit.gcwork import bulk_gc
from rapport.models import ComputedTrait, Profile
from rapport.process import computed as pure
from rapport.process import repository
from rapport.process.computed import Accumulator, EventView, Offers, PurchaseSettings, TraitSpec
from rapport.runtime import Runtime
from rapport.worker import queue

STATE_KEY = "_state"
RECOMPUTE_JOB = "process.recompute"
_ENSURED_PORT = "process.builtins_ensured"

Progress = Callable[[int, int], None]


def spec_of(row: Any) -> TraitSpec:
    """Return the pure spec of a definition row (an ORM row or a row of the same columns)."""
    return TraitSpec(
        name=row.name,
        event=row.event,
        aggregation=row.aggregation,
        property=row.property,
        conditions=tuple(
            pure.Condition(c["property"], c.get("op", "="), c.get("value")) for c in row.conditions or []
        ),
        window_days=row.window_days,
        workspace_id=row.workspace_id,
    )


def ensure_builtins(db: Session, *, workspace_id: int, now: datetime) -> int:
    """Create the built-in definitions the workspace lacks (an archived one is not revived); returns how many.

    ``INSERT … ON CONFLICT DO NOTHING``: two edges ensuring at once (a request and the processor) never fail.
    """
    existing = set(db.scalars(select(ComputedTrait.name).where(ComputedTrait.workspace_id == workspace_id)))
    rows = [
        {
            "workspace_id": workspace_id,
            "name": spec.name,
            "description": description,
            "event": spec.event,
            "aggregation": spec.aggregation,
            "property": spec.property,
            "conditions": [c.to_dict() for c in spec.conditions],
            "window_days": spec.window_days,
            "builtin": True,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        for spec, description in pure.builtin_specs()
        if spec.name not in existing
    ]
    if not rows:
        return 0
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    db.execute(insert(ComputedTrait).on_conflict_do_nothing(index_elements=["workspace_id", "name"]), rows)
    return len(rows)


def _ensure_once(runtime: Runtime, db: Session, workspace_id: int, now: datetime) -> None:
    done = cast(set[int], runtime.ports.setdefault(_ENSURED_PORT, set()))
    if workspace_id not in done and ensure_builtins(db, workspace_id=workspace_id, now=now) == 0:
        done.add(workspace_id)  # only once nothing had to be added: an added row may yet roll back


def list_definitions(
    db: Session, *, workspace_id: int, include_archived: bool = False
) -> list[ComputedTrait]:
    """Return the workspace's definitions by name."""
    stmt = select(ComputedTrait).where(ComputedTrait.workspace_id == workspace_id)
    if not include_archived:
        stmt = stmt.where(ComputedTrait.archived_at.is_(None))
    return list(db.scalars(stmt.order_by(ComputedTrait.name)))


def get_definition(db: Session, *, workspace_id: int, trait_id: int) -> ComputedTrait:
    """Return one definition of the workspace; NotFound otherwise."""
    row = db.scalar(
        select(ComputedTrait).where(ComputedTrait.id == trait_id, ComputedTrait.workspace_id == workspace_id)
    )
    if row is None:
        raise NotFound("no such computed trait")
    return row


def _enqueue_recompute(db: Session, row: ComputedTrait, now: datetime) -> None:
    queue.enqueue(
        db,
        kind=RECOMPUTE_JOB,
        workspace_id=row.workspace_id,
        payload={"names": [row.name]},
        dedupe_key=f"{RECOMPUTE_JOB}:{row.workspace_id}:{row.name}:{row.id}:{row.version}",
        max_attempts=3,
        now=now,
    )


def create_definition(
    db: Session,
    *,
    workspace_id: int,
    name: str,
    event: str,
    aggregation: str,
    property: str | None = None,
    conditions: Sequence[dict[str, Any]] | None = None,
    window_days: int | None = None,
    description: str = "",
    now: datetime,
) -> ComputedTrait:
    """Validate and add a definition, and enqueue its backfill in the same transaction."""
    spec = pure.validate(
        name=name,
        event=event,
        aggregation=aggregation,
        property=property,
        conditions=conditions,
        window_days=window_days,
    )
    taken = db.scalar(
        select(func.count())
        .select_from(ComputedTrait)
        .where(ComputedTrait.workspace_id == workspace_id, ComputedTrait.name == name)
    )
    if taken:
        raise Conflict(f"a computed trait named {name!r} exists", code="computed_trait_exists")
    row = ComputedTrait(
        workspace_id=workspace_id,
        name=spec.name,
        description=description,
        event=spec.event,
        aggregation=spec.aggregation,
        property=spec.property,
        conditions=[c.to_dict() for c in spec.conditions],
        window_days=spec.window_days,
        builtin=False,
        created_at=now,
        updated_at=now,
    )
    db.add(row)
    db.flush()
    _enqueue_recompute(db, row, now)
    return row


def update_definition(
    db: Session, *, workspace_id: int, trait_id: int, changes: dict[str, Any], now: datetime
) -> ComputedTrait:
    """Change a definition (event, aggregation, property, conditions, window_days, description); a change
    of what it computes bumps the version and enqueues a backfill."""
    row = get_definition(db, workspace_id=workspace_id, trait_id=trait_id)
    fields = {
        "event": row.event,
        "aggregation": row.aggregation,
        "property": row.property,
        "conditions": row.conditions,
        "window_days": row.window_days,
    }
    for key in fields:
        if key in changes:
            fields[key] = changes[key]
    spec = pure.validate(
        name=row.name,
        event=str(fields["event"]),
        aggregation=str(fields["aggregation"]),
        property=cast(str | None, fields["property"]),
        conditions=cast(list[dict[str, Any]], fields["conditions"] or []),
        window_days=cast(int | None, fields["window_days"]),
    )
    new = {
        "event": spec.event,
        "aggregation": spec.aggregation,
        "property": spec.property,
        "conditions": [c.to_dict() for c in spec.conditions],
        "window_days": spec.window_days,
    }
    if "description" in changes and changes["description"] is not None:
        row.description = str(changes["description"])
    old = {k: getattr(row, k) for k in new}
    if new != old or row.archived_at is not None:
        for key, value in new.items():
            setattr(row, key, value)
        row.archived_at = None
        row.version += 1
        row.updated_at = now
        db.flush()
        _enqueue_recompute(db, row, now)
    return row


def archive_definition(db: Session, *, workspace_id: int, trait_id: int, now: datetime) -> ComputedTrait:
    """Archive a definition (its stored values are dropped by the backfill job it enqueues)."""
    row = get_definition(db, workspace_id=workspace_id, trait_id=trait_id)
    if row.archived_at is None:
        row.archived_at = now
        row.version += 1
        row.updated_at = now
        db.flush()
        _enqueue_recompute(db, row, now)
    return row


def _stored_specs(db: Session, workspace_id: int, names: Iterable[str] | None = None) -> list[TraitSpec]:
    """The active stored (not live) definitions as specs, by name (the processor asks on every batch: its
    transaction reuses those of an earlier batch while the definitions are unchanged, accounts.definitions)."""
    every = definitions.cached(
        db, workspace_id, "process.stored_specs", lambda: _load_stored_specs(db, workspace_id)
    )
    wanted = set(names) if names is not None else None
    return [s for s in every if wanted is None or s.name in wanted]


def _load_stored_specs(db: Session, workspace_id: int) -> tuple[TraitSpec, ...]:
    """Read the active stored definitions as plain columns, not ORM rows."""
    rows = db.execute(
        select(
            ComputedTrait.name,
            ComputedTrait.event,
            ComputedTrait.aggregation,
            ComputedTrait.property,
            ComputedTrait.conditions,
            ComputedTrait.window_days,
            ComputedTrait.workspace_id,
        )
        .where(ComputedTrait.workspace_id == workspace_id, ComputedTrait.archived_at.is_(None))
        .order_by(ComputedTrait.name)
    ).all()
    return tuple(s for s in (spec_of(r) for r in rows) if not s.live)


def _needed_names(specs: Sequence[TraitSpec], purchase: PurchaseSettings) -> set[str] | None:
    names: set[str] = set()
    for spec in specs:
        wanted = spec.event_names(purchase)
        if wanted is None:
            return None
        names.update(wanted)
    return names


def _fold_profiles(
    db: Session,
    workspace_id: int,
    specs: Sequence[TraitSpec],
    profile_ids: Sequence[int],
    purchase: PurchaseSettings,
) -> dict[int, dict[str, Accumulator]]:
    """Full fold of the given traits over every event of the given profiles."""
    accs: dict[int, dict[str, Accumulator]] = {
        pid: {s.name: Accumulator.empty(s.aggregation, bounded=False) for s in specs} for pid in profile_ids
    }
    if not specs or not profile_ids:
        return accs
    names = _needed_names(specs, purchase)
    with_context = any(s.reads_context() for s in specs)
    offers = Offers(specs, purchase)
    for row in repository.events_of_profiles(
        db, workspace_id, list(profile_ids), names=names, with_context=with_context
    ):
        slot = accs.get(cast(int, row.profile_id))
        if slot is None:
            continue
        for spec, value in offers.counted(row):
            slot[spec.name].add(row, value)
    for slot in accs.values():
        for acc in slot.values():
            acc.compact()
    return accs


def _patches(
    accs: dict[int, dict[str, Accumulator]], current: dict[int, dict[str, Any]], drop: Iterable[str] = ()
) -> dict[int, dict[str, Any]]:
    patches: dict[int, dict[str, Any]] = {}
    dropped = list(drop)
    for pid, slot in accs.items():
        state = dict(current.get(pid, {}).get(STATE_KEY) or {})
        patch: dict[str, Any] = {}
        for name, acc in slot.items():
            state[name] = acc.state()
            patch[name] = acc.value()
        for name in dropped:
            state.pop(name, None)
        patch[STATE_KEY] = state
        patches[pid] = patch
    return patches


def _batch_events(batch: BatchApplied, *, names: set[str] | None, with_context: bool) -> list[EventView]:
    """The batch's linked events (only of ``names`` when given) in id order: from the rows the processor
    applied when it hands them over (no merges), else read back."""
    if batch.linked is None:
        return repository.events_by_id(
            batch.db, batch.workspace_id, batch.event_ids, names=names, with_context=with_context
        )
    return [
        EventView(
            id=row.id,
            profile_id=pid,
            event=row.event,
            type=row.type,
            channel=row.channel,
            timestamp=row.timestamp,
            properties=row.properties if isinstance(row.properties, dict) else {},
            context=row.context if with_context and isinstance(row.context, dict) else {},
        )
        for row, pid in sorted(batch.linked, key=lambda linked: linked[0].id)
        if names is None or row.event in names
    ]


def apply_batch(batch: BatchApplied) -> None:
    """Before-write hook: fold the batch's events into the stored traits of their profiles (same
    transaction). The patches ride with the batch's profile updates when it defers them (PostgreSQL), else
    they are written here.

    Merge survivors and states past their bounds are recomputed from all of the profile's events. A
    profile none of whose new events counts for any trait, and whose every trait is stored already, is
    left alone: its patch would write back what is there (most events of a busy stream, e.g. identifies).
    """
    db = batch.db
    ws = batch.workspace_id
    now = batch.runtime.clock.now()
    _ensure_once(batch.runtime, db, ws, now)
    if not batch.event_ids and not batch.merges:
        return
    specs = _stored_specs(db, ws)
    if not specs:
        return
    purchase = (
        repository.purchase_settings(db, ws)
        if batch.workspace_settings is None
        else PurchaseSettings.from_settings(batch.workspace_settings)
    )
    names = _needed_names(specs, purchase)
    events = _batch_events(batch, names=names, with_context=any(s.reads_context() for s in specs))
    survivors = {s for s, _ in batch.merges}
    counts_for = Offers(specs, purchase).counted
    # what each event adds, decided once: it does not depend on the profile's state
    adds: dict[int, list[tuple[EventView, list[tuple[TraitSpec, Any]]]]] = defaultdict(list)
    for e in events:
        if e.profile_id is not None and e.profile_id not in survivors:
            adds[e.profile_id].append((e, counts_for(e)))
    touched = set(adds) | survivors
    if not touched:
        return
    current = repository.computed_of(db, ws, touched)
    all_names = [s.name for s in specs]
    accs = _fold_profiles(db, ws, specs, sorted(survivors & set(current)), purchase)
    redo: dict[str, list[int]] = defaultdict(list)
    for pid, rows in adds.items():
        if pid not in current:
            continue
        state = current[pid].get(STATE_KEY) or {}
        if not any(counted for _e, counted in rows) and all(
            n in current[pid] and n in state for n in all_names
        ):
            continue
        slot = {s.name: Accumulator.load(s.aggregation, state.get(s.name)) for s in specs}
        for row, counted in rows:
            for spec, value in counted:
                slot[spec.name].add(row, value)
        redo_names = [name for name, acc in slot.items() if acc.overflow]
        for name in redo_names:
            redo[name].append(pid)
        accs[pid] = slot
    for name, pids in redo.items():
        spec = next(s for s in specs if s.name == name)
        for pid, slot in _fold_profiles(db, ws, [spec], pids, purchase).items():
            accs[pid][name] = slot[name]
    patches = _patches(accs, current)
    writes = batch.profile_writes
    if writes is not None and writes.takes_computed:
        # PostgreSQL, before the batch's profile updates are written: one write per profile for both
        writes.add_computed(patches)
        return
    # ``current`` was read in this transaction, which holds SQLite's writer lock from its start: the patch
    # is merged into it instead of reading the documents again (PostgreSQL patches in SQL)
    repository.patch_computed(db, ws, patches, current=current)


def recompute(
    runtime: Runtime,
    workspace_id: int,
    names: Sequence[str] | None = None,
    progress: Progress | None = None,
    *,
    batch_size: int = 1000,
) -> int:
    """Recompute stored traits (all, or ``names``) for every profile from the events; returns profiles done.

    One transaction per batch of profiles, under the workspace's processing lock so the incremental hook
    never interleaves. Names of archived or live definitions are removed from ``Profile.computed``.
    """
    with runtime.sessions() as db:
        ensure_builtins(db, workspace_id=workspace_id, now=runtime.clock.now())
        db.commit()
        total = (
            db.scalar(
                select(func.count())
                .select_from(Profile)
                .where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
            )
            or 0
        )
        all_rows = list_definitions(db, workspace_id=workspace_id, include_archived=True)
        ids = [
            pid for batch in repository.profile_id_batches(db, workspace_id, size=batch_size) for pid in batch
        ]
    wanted = set(names) if names is not None else {r.name for r in all_rows}
    drop = [r.name for r in all_rows if r.name in wanted and (r.archived_at is not None or spec_of(r).live)]
    done = 0
    with bulk_gc():
        for i in range(0, len(ids), batch_size):
            chunk = ids[i : i + batch_size]
            with runtime.sessions() as db:
                lock_workspace(db, workspace_id, wait=True)
                specs = _stored_specs(db, workspace_id, wanted)
                purchase = repository.purchase_settings(db, workspace_id)
                current = repository.computed_of(db, workspace_id, chunk)
                accs = _fold_profiles(db, workspace_id, specs, chunk, purchase)
                repository.patch_computed(db, workspace_id, _patches(accs, current, drop), remove=drop)
                db.commit()
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return done


def read_computed(
    db: Session,
    workspace_id: int,
    profile_ids: Sequence[int],
    names: Sequence[str] | None,
    now: datetime,
) -> dict[int, dict[str, Any]]:
    """Return ``{profile_id: {name: value}}`` for the named (default: all active) traits, exact at ``now``.

    Stored traits come from ``Profile.computed`` (folded from the events when not there yet); windowed
    and clock-dependent ones are evaluated from the events at ``now``.
    """
    rows = list_definitions(db, workspace_id=workspace_id)
    specs = [spec_of(r) for r in rows if names is None or r.name in set(names)]
    purchase = repository.purchase_settings(db, workspace_id)
    current = repository.computed_of(db, workspace_id, profile_ids)
    out: dict[int, dict[str, Any]] = {pid: {} for pid in profile_ids if pid in current}
    missing: dict[str, list[int]] = defaultdict(list)
    for spec in specs:
        for pid in out:
            stored = current[pid]
            state = (stored.get(STATE_KEY) or {}).get(spec.name)
            if spec.window_days is None and spec.aggregation in pure.CLOCK_DEPENDENT and state is not None:
                out[pid][spec.name] = Accumulator.load(spec.aggregation, state).value(now)
            elif not spec.live and spec.name in stored:
                out[pid][spec.name] = stored[spec.name]
            else:
                missing[spec.name].append(pid)
    for name, pids in missing.items():
        spec = next(s for s in specs if s.name == name)
        since = pure.window_start(now, spec.window_days) if spec.window_days is not None else None
        names_needed = spec.event_names(purchase)
        accs = {pid: Accumulator.empty(spec.aggregation, bounded=False) for pid in pids}
        for row in repository.events_of_profiles(
            db, workspace_id, pids, names=names_needed, since=since, with_context=spec.reads_context()
        ):
            if spec.accepts(row, purchase, now):
                accs[cast(int, row.profile_id)].add(row, spec.value_of(row, purchase))
        for pid, acc in accs.items():
            out[pid][name] = acc.value(now)
    return out
