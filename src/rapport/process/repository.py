"""Queries of the process domain: event views, profile batches, and merge-patches of ``Profile.computed``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, null, select, text
from sqlalchemy.orm import Session

from rapport.db.base import UTCDateTime
from rapport.db.planner import one_of, same_workspace
from rapport.models import Event, Profile, Workspace
from rapport.process.computed import EventView, PurchaseSettings

_EVENT_COLUMNS = (
    Event.id,
    Event.profile_id,
    Event.event,
    Event.type,
    Event.channel,
    Event.timestamp,
    Event.properties,
    Event.context,
)
CHUNK = 500


_NO_CONTEXT = (*_EVENT_COLUMNS[:-1], null().label("context"))


def view(row: Any) -> EventView:
    """Turn a selected event row into the fold's view of it."""
    properties, context = row.properties, row.context
    return EventView(
        id=row.id,
        profile_id=row.profile_id,
        event=row.event,
        type=row.type,
        channel=row.channel,
        timestamp=row.timestamp,
        properties=properties if isinstance(properties, dict) else {},
        context=context if isinstance(context, dict) else {},
    )


def purchase_settings(db: Session, workspace_id: int) -> PurchaseSettings:
    """Return the workspace's purchase settings (events and value property)."""
    settings = db.scalar(select(Workspace.settings).where(Workspace.id == workspace_id))
    return PurchaseSettings.from_settings(settings if isinstance(settings, dict) else {})


def events_by_id(
    db: Session,
    workspace_id: int,
    event_ids: Sequence[int],
    *,
    names: Iterable[str] | None = None,
    with_context: bool = True,
) -> list[EventView]:
    """Return the linked events among ``event_ids`` (optionally only of ``names``), in id order; without
    ``with_context`` the (large) context is not loaded."""
    out: list[EventView] = []
    wanted = sorted(set(names)) if names is not None else None
    for i in range(0, len(event_ids), CHUNK):
        part = list(event_ids[i : i + CHUNK])
        stmt = select(*(_EVENT_COLUMNS if with_context else _NO_CONTEXT)).where(
            Event.workspace_id == workspace_id, Event.id.in_(part), Event.profile_id.is_not(None)
        )
        if wanted is not None:
            stmt = stmt.where(Event.event.in_(wanted))
        rows = db.execute(stmt.order_by(Event.id))
        out.extend(view(r) for r in rows)
    out.sort(key=lambda e: e.id)
    return out


def events_of_profiles(
    db: Session,
    workspace_id: int,
    profile_ids: Sequence[int],
    *,
    names: Iterable[str] | None = None,
    since: datetime | None = None,
    with_context: bool = True,
) -> Iterator[EventView]:
    """Yield the events of ``profile_ids`` ordered by (profile, timestamp, id), optionally narrowed."""
    for i in range(0, len(profile_ids), CHUNK):
        part = list(profile_ids[i : i + CHUNK])
        stmt = select(*(_EVENT_COLUMNS if with_context else _NO_CONTEXT)).where(
            same_workspace(Event.workspace_id, workspace_id), Event.profile_id.in_(part)
        )
        if names is not None:
            stmt = stmt.where(Event.event.in_(sorted(set(names))))
        if since is not None:
            stmt = stmt.where(Event.timestamp >= bindparam("since", since, type_=UTCDateTime()))
        stmt = stmt.order_by(Event.profile_id, Event.timestamp, Event.id)
        for row in db.execute(stmt):
            yield view(row)


_COMPUTED_OF = select(Profile.__table__.c.id, Profile.__table__.c.computed).where(
    same_workspace(Profile.__table__.c.workspace_id, bindparam("ws")),
    one_of(Profile.__table__.c.id, "ids"),
)


def computed_of(db: Session, workspace_id: int, profile_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Return ``Profile.computed`` of each profile (a statement built once, run on the connection: the
    real-time fold reads a few profiles per batch)."""
    ids = sorted(set(profile_ids))
    out: dict[int, dict[str, Any]] = {}
    conn = db.connection()
    for i in range(0, len(ids), CHUNK):
        rows = conn.execute(_COMPUTED_OF, {"ws": workspace_id, "ids": ids[i : i + CHUNK]})
        for pid, computed in rows:
            out[pid] = dict(computed) if isinstance(computed, dict) else {}
    return out


def profile_id_batches(db: Session, workspace_id: int, *, size: int = 1000) -> Iterator[list[int]]:
    """Yield the ids of the workspace's live (not merged-away) profiles in ascending batches (keyset)."""
    after = 0
    while True:
        ids = list(
            db.execute(
                select(Profile.id)
                .where(
                    Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None), Profile.id > after
                )
                .order_by(Profile.id)
                .limit(size)
            ).scalars()
        )
        if not ids:
            return
        yield ids
        after = ids[-1]


# one statement over one JSON document of [id, patch] pairs: a batch is one round trip and one plan
_PG_PATCH = text(
    "UPDATE profiles AS p SET computed = p.computed - CAST(:rm AS TEXT[]) || v.patch "
    "FROM (SELECT (r->>0)::bigint AS id, (r->1)::jsonb AS patch FROM jsonb_array_elements(CAST(:doc AS JSONB)) AS r) "
    "AS v WHERE p.id = v.id AND p.workspace_id = :ws"
)
_SQLITE_WRITE = text("UPDATE profiles SET computed = :c WHERE id = :id")
_SQLITE_PATCH = text(
    "UPDATE profiles SET computed = json_patch(computed, :patch) WHERE id = :id AND workspace_id = :ws"
)


def patch_computed(
    db: Session,
    workspace_id: int,
    patches: Mapping[int, Mapping[str, Any]],
    *,
    remove: Sequence[str] = (),
    current: Mapping[int, Mapping[str, Any]] | None = None,
) -> int:
    """Set top-level keys of ``Profile.computed`` (and drop ``remove`` keys) for many profiles at once.

    Keys not named are left alone, so writers of different keys (computed traits, scores, lifestyle) never
    undo each other. PostgreSQL: ``computed - keys || patch`` in one executemany; SQLite (one writer at a
    time, and the transaction holds the lock from its start): ``json_patch`` when every value is a
    scalar, else read (or take ``current``: the documents as this same transaction read them), merge in
    Python and write back (nested values replace, never merge, on both).
    """
    if not patches:
        return 0
    if db.get_bind().dialect.name == "postgresql":
        doc = json.dumps([[pid, patch] for pid, patch in patches.items()])
        db.execute(_PG_PATCH, {"ws": workspace_id, "rm": list(remove), "doc": doc})
        return len(patches)
    flat = all(
        v is not None and not isinstance(v, dict) for patch in patches.values() for v in patch.values()
    )
    if flat:
        # Scalars only: SQLite's json_patch (RFC 7396) sets them in C without a Python round trip of the
        # whole document; a null in the patch removes a key, which is how ``remove`` is applied here.
        gone = dict.fromkeys(remove)
        db.execute(
            _SQLITE_PATCH,
            [
                {"id": pid, "ws": workspace_id, "patch": json.dumps({**gone, **patch})}
                for pid, patch in patches.items()
            ],
        )
        return len(patches)
    if current is None or not set(patches) <= set(current):
        current = computed_of(db, workspace_id, patches)
    rows = []
    for pid, patch in patches.items():
        if pid not in current:
            continue
        merged = {k: v for k, v in current[pid].items() if k not in remove}
        merged.update(patch)
        rows.append({"id": pid, "c": json.dumps(merged)})
    if rows:
        db.execute(_SQLITE_WRITE, rows)
    return len(rows)
