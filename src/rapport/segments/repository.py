"""Every query of the segments domain: segment rows, matching profiles, materialised members, entry events."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, case, delete, func, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from rapport.db.planner import one_of
from rapport.models import Campaign, Event, Profile, Segment, SegmentMember
from rapport.models.event import PROCESSED
from rapport.segments import portable
from rapport.segments.ast import Node
from rapport.segments.compiler import Scope, compile_segment

PROFILES = cast(Table, Profile.__table__)
MEMBERS = cast(Table, SegmentMember.__table__)
EVENTS = cast(Table, Event.__table__)
CHUNK = 500
#: Live profiles by workspace (``models/profile.py``, migration 0007).
LIVE_INDEX = "ix_profiles_live"


def get_segment(db: Session, *, workspace_id: int, segment_id: int) -> Segment | None:
    """Return one segment of the workspace, or None."""
    return db.scalar(select(Segment).where(Segment.workspace_id == workspace_id, Segment.id == segment_id))


def get_by_name(db: Session, *, workspace_id: int, name: str, active_only: bool = True) -> Segment | None:
    """Return the workspace's segment called ``name`` (not archived unless asked), or None."""
    query = select(Segment).where(Segment.workspace_id == workspace_id, Segment.name == name)
    if active_only:
        query = query.where(Segment.archived_at.is_(None))
    return db.scalar(query.order_by(Segment.id.desc()).limit(1))


def list_segments(db: Session, *, workspace_id: int, include_archived: bool = False) -> list[Segment]:
    """Return the workspace's segments by name."""
    query = select(Segment).where(Segment.workspace_id == workspace_id)
    if not include_archived:
        query = query.where(Segment.archived_at.is_(None))
    return list(db.scalars(query.order_by(Segment.name, Segment.id)))


def segment_ids(db: Session, *, workspace_id: int) -> dict[str, int]:
    """Return the ids of the workspace's active segments by name."""
    rows = db.execute(
        select(Segment.name, Segment.id).where(
            Segment.workspace_id == workspace_id, Segment.archived_at.is_(None)
        )
    )
    return {name: sid for name, sid in rows}


def campaign_ids(db: Session, *, workspace_id: int) -> dict[str, int]:
    """Return the ids of the workspace's campaigns by name (engagement conditions name campaigns)."""
    rows = db.execute(select(Campaign.name, Campaign.id).where(Campaign.workspace_id == workspace_id))
    return {name: cid for name, cid in rows}


def _base(db: Session, workspace_id: int) -> tuple[FromClause, list[ColumnElement[Any]]]:
    """The workspace's live profiles, ``p``. SQLite reads them through ``ix_profiles_live`` (the live ids alone):
    left to itself it probes the table by rowid for each id of a condition's set, and the rows carry every
    trait, which is most of a count's time from 100k profiles on. PostgreSQL weighs that on its own."""
    p = _LIVE_ALIAS if _has_live_index(db) else _PLAIN_ALIAS
    return p, [p.c.workspace_id == workspace_id, p.c.merged_into_id.is_(None)]


# built once: an alias of the profiles table copies its columns (a real-time batch asked for one per segment)
_LIVE_ALIAS = portable.indexed_alias(PROFILES, "p", LIVE_INDEX)
_PLAIN_ALIAS = PROFILES.alias("p")


_LIVE_INDEX_SEEN: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def _has_live_index(db: Session) -> bool:
    """Whether the SQLite database has ``ix_profiles_live`` (a database migrated while migration 0007 was an
    empty placeholder lacks it; naming a missing index would fail the query). Looked up once per engine."""
    bind = db.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    if engine.dialect.name != "sqlite":
        return False
    found = _LIVE_INDEX_SEEN.get(engine)
    if found is None:
        query = text("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :name")
        found = _LIVE_INDEX_SEEN[engine] = db.execute(query, {"name": LIVE_INDEX}).first() is not None
    return found


def count_matching(db: Session, node: Node, scope: Scope) -> int:
    """Count the live profiles of the workspace that match ``node``."""
    portable.prepare(db.connection())
    p, live = _base(db, scope.workspace_id)
    query = select(func.count()).select_from(p).where(*live, compile_segment(node, scope=scope, profiles=p))
    return int(db.scalar(query) or 0)


def sample_matching(db: Session, node: Node, scope: Scope, *, limit: int = 20) -> list[Any]:
    """Return up to ``limit`` matching profiles (id, email, phone, name, traits), lowest ids first."""
    portable.prepare(db.connection())
    p, live = _base(db, scope.workspace_id)
    condition = compile_segment(node, scope=scope, profiles=p)
    query = (
        select(p.c.id, p.c.email, p.c.phone, p.c.name, p.c.traits)
        .where(*live, condition)
        .order_by(p.c.id)
        .limit(limit)
    )
    return list(db.execute(query))


def count_and_sample_query(db: Session, node: Node, scope: Scope, *, limit: int = 20) -> Any:
    """The statement behind ``count_and_sample``: ``(id, total)`` of the first ``limit`` matching profiles.

    The window runs in a subquery, so the planner plans the match for every row (as the count needs it):
    with ``ORDER BY id LIMIT`` on the same level PostgreSQL expects to stop after 20 rows and picks an
    id-ordered nested loop that then walks the whole workspace.
    """
    p, live = _base(db, scope.workspace_id)
    condition = compile_segment(node, scope=scope, profiles=p)
    total = func.count().over().label("total")
    matching = select(p.c.id, total).where(*live, condition).subquery("matching")
    return select(matching.c.id, matching.c.total).order_by(matching.c.id).limit(limit)


def count_and_sample(db: Session, node: Node, scope: Scope, *, limit: int = 20) -> tuple[int, list[Any]]:
    """Count the matching live profiles and return the first ``limit`` of them, in one scan.

    ``count(*) OVER ()`` rides along the ids of the matching rows, so the condition runs once; the sample's
    profile columns are then read by primary key.
    """
    portable.prepare(db.connection())
    rows = db.execute(count_and_sample_query(db, node, scope, limit=limit)).all()
    if not rows:
        return 0, []
    ids = [row.id for row in rows]
    sample = db.execute(
        select(PROFILES.c.id, PROFILES.c.email, PROFILES.c.phone, PROFILES.c.name, PROFILES.c.traits)
        .where(PROFILES.c.id.in_(ids))
        .order_by(PROFILES.c.id)
    ).all()
    return int(rows[0].total), list(sample)


def matching_ids(db: Session, node: Node, scope: Scope, *, among: Sequence[int] | None = None) -> set[int]:
    """Return the ids of matching live profiles (only those in ``among`` when given)."""
    portable.prepare(db.connection())
    p, live = _base(db, scope.workspace_id)
    condition = compile_segment(node, scope=scope, profiles=p)
    if among is None:
        return set(db.execute(select(p.c.id).where(*live, condition)).scalars())
    found: set[int] = set()
    ids = sorted(set(among))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        found.update(db.execute(select(p.c.id).where(*live, p.c.id.in_(chunk), condition)).scalars())
    return found


def evaluate_many(
    db: Session, trees: Sequence[tuple[Node, Scope]], *, workspace_id: int, among: Sequence[int]
) -> list[set[int]]:
    """Evaluate several segments for the profiles ``among`` in one query: the matching ids of each."""
    portable.prepare(db.connection())
    p, live = _base(db, workspace_id)
    columns = [
        case((compile_segment(tree, scope=scope, profiles=p), 1), else_=0).label(f"s{n}")
        for n, (tree, scope) in enumerate(trees)
    ]
    found: list[set[int]] = [set() for _ in trees]
    ids = sorted(set(among))
    query = select(p.c.id, *columns).where(*live, one_of(p.c.id, "among"))
    for start in range(0, len(ids), CHUNK):
        for row in db.execute(query, {"among": ids[start : start + CHUNK]}):
            for n in range(len(trees)):
                if row[n + 1]:
                    found[n].add(row[0])
    return found


# built once (list parameters) and run on the connection: the real-time hook asks every batch
_MEMBERSHIPS = select(MEMBERS.c.segment_id, MEMBERS.c.profile_id).where(
    one_of(MEMBERS.c.segment_id, "sids"), one_of(MEMBERS.c.profile_id, "ids")
)


def memberships(db: Session, *, segment_ids: Sequence[int], among: Sequence[int]) -> dict[int, set[int]]:
    """Return the members among ``among`` of each of ``segment_ids``."""
    found: dict[int, set[int]] = {sid: set() for sid in segment_ids}
    ids = sorted(set(among))
    conn = db.connection()
    for start in range(0, len(ids), CHUNK):
        rows = conn.execute(_MEMBERSHIPS, {"sids": list(segment_ids), "ids": ids[start : start + CHUNK]})
        for sid, pid in rows:
            found[sid].add(pid)
    return found


def member_ids(db: Session, *, segment_id: int, among: Sequence[int] | None = None) -> set[int]:
    """Return the current members of a segment (only those in ``among`` when given)."""
    query = select(MEMBERS.c.profile_id).where(MEMBERS.c.segment_id == segment_id)
    if among is None:
        return set(db.execute(query).scalars())
    found: set[int] = set()
    ids = sorted(set(among))
    for start in range(0, len(ids), CHUNK):
        found.update(db.execute(query.where(MEMBERS.c.profile_id.in_(ids[start : start + CHUNK]))).scalars())
    return found


def add_members(
    db: Session, *, workspace_id: int, segment_id: int, profile_ids: Iterable[int], at: datetime
) -> None:
    """Record profiles as members since ``at``."""
    ids = sorted(profile_ids)
    if db.get_bind().dialect.name == "postgresql":
        # one statement over an array: an executemany costs a round of driver work per row
        for start in range(0, len(ids), ARRAY_CHUNK):
            db.execute(
                _PG_ADD_MEMBERS,
                {"ws": workspace_id, "sid": segment_id, "at": at, "pids": ids[start : start + ARRAY_CHUNK]},
            )
        return
    rows = [
        {"workspace_id": workspace_id, "segment_id": segment_id, "profile_id": pid, "entered_at": at}
        for pid in ids
    ]
    for start in range(0, len(rows), 5000):
        db.execute(insert(MEMBERS), rows[start : start + 5000])


#: Rows one PostgreSQL array statement writes (``add_members``, ``record_changes``).
ARRAY_CHUNK = 20_000
_PG_ADD_MEMBERS = text(
    "INSERT INTO segment_members (workspace_id, segment_id, profile_id, entered_at) "
    "SELECT :ws, :sid, pid, :at FROM unnest(CAST(:pids AS BIGINT[])) AS pid"
).bindparams(bindparam("at", type_=MEMBERS.c.entered_at.type))


def remove_members(db: Session, *, segment_id: int, profile_ids: Iterable[int]) -> None:
    """Remove profiles from a segment's members."""
    ids = sorted(profile_ids)
    for start in range(0, len(ids), CHUNK):
        db.execute(
            delete(MEMBERS).where(
                MEMBERS.c.segment_id == segment_id, MEMBERS.c.profile_id.in_(ids[start : start + CHUNK])
            )
        )


def set_counters(db: Session, *, segment_id: int, at: datetime) -> int:
    """Store the member count and refresh time of a segment; returns the count."""
    count = int(
        db.scalar(select(func.count()).select_from(MEMBERS).where(MEMBERS.c.segment_id == segment_id)) or 0
    )
    db.execute(update(Segment).where(Segment.id == segment_id).values(member_count=count, refreshed_at=at))
    return count


def record_changes(
    db: Session,
    *,
    workspace_id: int,
    segment_id: int,
    segment_name: str,
    entered: Iterable[int],
    exited: Iterable[int],
    at: datetime,
) -> None:
    """Append ``segment_entered``/``segment_exited`` events to the profiles' timelines."""
    properties = {"segment_id": segment_id, "segment_name": segment_name}
    moves = [
        (f"seg:{segment_id}:{pid}:{kind}:{uuid.uuid4().hex}", f"segment_{kind}", pid)
        for kind, ids in (("entered", sorted(entered)), ("exited", sorted(exited)))
        for pid in ids
    ]
    if db.get_bind().dialect.name == "postgresql":
        for start in range(0, len(moves), ARRAY_CHUNK):
            chunk = moves[start : start + ARRAY_CHUNK]
            db.execute(
                _PG_RECORD,
                {
                    "ws": workspace_id,
                    "at": at,
                    "props": properties,
                    "state": PROCESSED,
                    "mids": [m for m, _e, _p in chunk],
                    "names": [e for _m, e, _p in chunk],
                    "pids": [p for _m, _e, p in chunk],
                },
            )
        return
    rows = [
        {
            "workspace_id": workspace_id,
            "message_id": message_id,
            "type": "track",
            "event": name,
            "profile_id": pid,
            "channel": "server",
            "timestamp": at,
            "received_at": at,
            "properties": properties,
            "traits": {},
            "context": {},
            "extra": {},
            "source": "rapport",
            "state": PROCESSED,
        }
        for message_id, name, pid in moves
    ]
    for start in range(0, len(rows), 5000):
        db.execute(insert(EVENTS), rows[start : start + 5000])


_PG_RECORD = text(
    "INSERT INTO events (workspace_id, message_id, type, event, profile_id, channel, timestamp, received_at, "
    "properties, traits, context, extra, source, state) "
    "SELECT :ws, m.mid, 'track', m.name, m.pid, 'server', :at, :at, :props, '{}', '{}', '{}', 'rapport', :state "
    "FROM unnest(CAST(:mids AS TEXT[]), CAST(:names AS TEXT[]), CAST(:pids AS BIGINT[])) "
    "WITH ORDINALITY AS m(mid, name, pid, n) ORDER BY m.n"
).bindparams(
    bindparam("at", type_=EVENTS.c.timestamp.type),
    bindparam("props", type_=EVENTS.c.properties.type),
)


def list_members(db: Session, *, segment_id: int, limit: int, offset: int) -> list[Any]:
    """Return one page of members (profile id, email, phone, name, entered_at), by entry then id."""
    query = (
        select(PROFILES.c.id, PROFILES.c.email, PROFILES.c.phone, PROFILES.c.name, MEMBERS.c.entered_at)
        .join(PROFILES, PROFILES.c.id == MEMBERS.c.profile_id)
        .where(MEMBERS.c.segment_id == segment_id)
        .order_by(MEMBERS.c.profile_id)
        .limit(limit)
        .offset(offset)
    )
    return list(db.execute(query))


def iter_members(db: Session, *, segment_id: int, batch: int = 2000) -> Iterator[Any]:
    """Yield every member with profile columns, keyset-paginated by profile id."""
    last = 0
    while True:
        rows = list(
            db.execute(
                select(
                    PROFILES.c.id,
                    PROFILES.c.email,
                    PROFILES.c.phone,
                    PROFILES.c.name,
                    PROFILES.c.traits,
                    MEMBERS.c.entered_at,
                )
                .join(PROFILES, PROFILES.c.id == MEMBERS.c.profile_id)
                .where(MEMBERS.c.segment_id == segment_id, MEMBERS.c.profile_id > last)
                .order_by(MEMBERS.c.profile_id)
                .limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def referencing(db: Session, *, workspace_id: int) -> list[Segment]:
    """Return the workspace's active segments (callers read their ASTs for references)."""
    return list_segments(db, workspace_id=workspace_id)
