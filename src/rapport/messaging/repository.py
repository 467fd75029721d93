"""Every query of the outbox: insert, claim, settle, counters."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Integer, Table, Text, and_, bindparam, func, select, update
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.db.base import UTCDateTime, pg_insert_from_json, pg_pick, pg_time, sqlite_time
from rapport.db.planner import one_of
from rapport.models import Message, Profile, SendCounter, Suppression

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
SKIPPED = "skipped"
DEAD = "dead"
UNKNOWN = "unknown"
FINAL = frozenset({SENT, SKIPPED, DEAD, UNKNOWN})


def _insert(db: Session) -> Any:
    return postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert


#: Rows per multi-row INSERT: well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
BULK_CHUNK = 1000
_MESSAGES = cast(Table, Message.__table__)
MESSAGE_COLUMNS = (
    "workspace_id",
    "message_id",
    "dedupe_key",
    "profile_id",
    "campaign_id",
    "variant",
    "channel",
    "topic",
    "kind",
    "priority",
    "status",
    "run_at",
    "attempts",
    "max_attempts",
    "content",
    "created_at",
    "updated_at",
)


#: ``json.dumps(value, separators=(",", ":"))`` without building an encoder per call (one per feedback event)
_COMPACT = json.JSONEncoder(separators=(",", ":"))


class BulkValues:
    """Values as :func:`insert_rows` takes them: on SQLite JSON as text (serialised once when many rows
    share it) and UTC times as SQLAlchemy's text; on PostgreSQL JSON values as they are and times as ISO
    text (both travel inside one JSON document)."""

    def __init__(self, db: Session) -> None:
        self.postgres = db.get_bind().dialect.name == "postgresql"
        self._json: dict[int, tuple[Any, str]] = {}

    def json(self, value: Any) -> Any:
        """Return ``value`` ready for a JSON column."""
        if self.postgres:
            return value
        key = id(value)
        hit = self._json.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        text = _COMPACT.encode(value)
        self._json[key] = (value, text)
        return text

    def time(self, value: datetime | None) -> Any:
        """Return a timestamp as the driver should bind it."""
        if value is None:
            return None
        return pg_time(value) if self.postgres else sqlite_time(value)


def insert_rows(
    db: Session,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    conflict: str = "",
    returning: str = "",
) -> list[tuple[Any, ...]]:
    """Insert driver-ready ``rows`` (values in ``columns`` order) with multi-row INSERTs, ``conflict``
    (e.g. ``ON CONFLICT (a, b) DO NOTHING``) and ``returning`` appended; returns the returned rows.

    SQLite: ``INSERT … VALUES (…), (…)`` of ``BULK_CHUNK`` rows. PostgreSQL: ``INSERT … SELECT … FROM
    jsonb_array_elements(%s)`` over one JSON array of rows (``db.base.pg_insert_from_json``), so the
    statement text stays short and is parsed once whatever the row count, and the values travel as one
    string ``json.dumps`` writes in C (JSON columns as nested values, times as ISO text). Names come from
    the ORM metadata; every value is bound.
    """
    tail = (f" {conflict}" if conflict else "") + (f" RETURNING {returning}" if returning else "")
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) "
    conn = db.connection()
    out: list[tuple[Any, ...]] = []
    postgres = db.get_bind().dialect.name == "postgresql"
    chunk = BULK_CHUNK * (10 if postgres else 1)
    if postgres:
        sql = pg_insert_from_json(table, columns, tail.strip())
    one = "(" + ", ".join("?" for _ in columns) + ")"

    def flush(batch: list[Sequence[Any]]) -> None:
        if postgres:
            result = conn.exec_driver_sql(sql, (json.dumps(batch, separators=(",", ":")),))
        else:
            flat = tuple(value for row in batch for value in row)
            result = conn.exec_driver_sql(head + "VALUES " + ", ".join([one] * len(batch)) + tail, flat)
        if returning:
            out.extend(tuple(r) for r in result.fetchall())

    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == chunk:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return out


#: PostgreSQL: the channel notified by a transaction that queues messages (delivered at its commit). The
#: deliverer's lane LISTENs on it (``Deliverer.wake_channel``), so a deliverer in another process (``rapport
#: worker --role delivery``) starts at once instead of at its next poll; in one process the lanes wake
#: each other anyway.
OUTBOX_CHANNEL = "rapport_outbox"
_NOTIFY_OUTBOX = f"NOTIFY {OUTBOX_CHANNEL}"


#: ``Session.info`` key: where a transaction that watches its outbox rows (:func:`watch_queued`) collects
#: their ids, for a deliverer of the same process to take over before the commit (``Deliverer.adopt``).
_QUEUED_HERE = "rapport.outbox.queued"


def watch_queued(db: Session) -> None:
    """Collect the ids of the outbox rows this transaction inserts from now on (see :func:`take_queued`)."""
    db.info[_QUEUED_HERE] = []


def take_queued(db: Session) -> list[int]:
    """Return (and forget) the ids of the outbox rows inserted since :func:`watch_queued`; stop watching."""
    return list(db.info.pop(_QUEUED_HERE, None) or ())


def _queued(db: Session, ids: Sequence[int]) -> None:
    """Outbox rows ``ids`` were inserted: note them for a watching transaction, wake the deliverers."""
    watched = db.info.get(_QUEUED_HERE)
    if watched is not None:
        watched.extend(ids)
    if db.get_bind().dialect.name == "postgresql":
        db.connection().exec_driver_sql(_NOTIFY_OUTBOX)


def insert_messages(db: Session, rows: Sequence[Sequence[Any]]) -> list[tuple[int, str]]:
    """Insert outbox rows (values in ``MESSAGE_COLUMNS`` order, driver-ready); rows whose (workspace,
    dedupe key) exists already are skipped (R6). Returns (id, dedupe_key) of the inserted ones."""
    found = insert_rows(
        db,
        _MESSAGES,
        MESSAGE_COLUMNS,
        rows,
        conflict="ON CONFLICT (workspace_id, dedupe_key) DO NOTHING",
        returning="id, dedupe_key",
    )
    inserted = [(int(pk), str(key)) for pk, key in found]
    if inserted:
        _queued(db, [pk for pk, _key in inserted])
    return inserted


#: One statement text whatever the list's length (db/planner.py: an array on PostgreSQL)
_EXISTING = select(Profile.id).where(Profile.workspace_id == bindparam("ws"), one_of(Profile.id, "ids"))


def existing_profiles(db: Session, *, workspace_id: int, profile_ids: Sequence[int]) -> set[int]:
    """Return which of ``profile_ids`` are profiles of the workspace."""
    found: set[int] = set()
    ids = list(profile_ids)
    for start in range(0, len(ids), 5000):  # SQLite binds one parameter per id (under its 32,766)
        part = ids[start : start + 5000]
        found.update(int(pk) for pk in db.scalars(_EXISTING, {"ws": workspace_id, "ids": part}))
    return found


def insert_message(db: Session, values: dict[str, Any]) -> int | None:
    """Insert one outbox row; None when its (workspace, dedupe key) exists already (R6)."""
    stmt = (
        _insert(db)(Message)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["workspace_id", "dedupe_key"])
        .returning(Message.id)
    )
    pk = db.execute(stmt).scalar_one_or_none()
    if pk is not None:
        _queued(db, [pk])
    return pk


@dataclass(slots=True)
class ClaimedMessage:
    """An outbox row as the deliverer works on it after claiming: plain columns, no ORM object (the
    verdicts are written back by id with :func:`update_messages`)."""

    id: int
    workspace_id: int
    message_id: str
    profile_id: int
    campaign_id: int | None
    variant: str | None
    channel: str
    topic: str
    kind: str
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    last_error: str | None
    content: dict[str, Any]
    to_address: str | None = None


_CLAIMED_COLUMNS = tuple(_MESSAGES.c[name] for name in ClaimedMessage.__slots__[:14])  # in claim's order


class ContentCache:
    """Parsed outbox content by its JSON text: the rows of one campaign carry the same document, which is
    then parsed once and shared (read-only: rendering and the checks never change a row's content)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._parsed: dict[str, dict[str, Any]] = {}

    def parse(self, text: str | None) -> dict[str, Any]:
        """Return the content a row's JSON text holds."""
        if not text:
            return {}
        found = self._parsed.get(text)
        if found is None:
            found = json.loads(text)
            if not isinstance(found, dict):
                found = {}
            if len(self._parsed) >= self.size:
                self._parsed.clear()
            self._parsed[text] = found
        return found


_ANY_DUE = (
    select(Message.id)
    .where(Message.status == QUEUED, Message.run_at <= bindparam("now", type_=Message.run_at.type))
    .order_by(Message.priority, Message.run_at, Message.id)
    .limit(1)
)


def any_due(db: Session, *, now: datetime) -> bool:
    """Tell whether a queued message is due: a read (no writer lock on SQLite, no row locks on
    PostgreSQL), in the claim's own index order, so an idle deliverer woken by every processed batch does
    not open a write transaction to find nothing."""
    return db.execute(_ANY_DUE, {"now": now}).first() is not None


def any_sending_before(db: Session, cutoff: datetime) -> bool:
    """Tell whether a row has been ``sending`` with a lease that ran out before ``cutoff`` (a read)."""
    found = db.execute(
        select(Message.id).where(Message.status == SENDING, Message.claimed_until < cutoff).limit(1)
    ).first()
    return found is not None


@functools.cache
def _claim_statement(postgres: bool, *, among: bool) -> Any:
    """The claim UPDATE (built once per shape: building it per round cost more Python than running it):
    due queued rows in priority order (``among``: only those of the ``ids`` list), SKIP LOCKED on
    PostgreSQL, marked ``sending`` for the worker; returns the rows with their content as JSON text."""
    now = bindparam("now", type_=Message.run_at.type)
    due = and_(Message.status == QUEUED, Message.run_at <= now)
    if among:
        due = and_(due, one_of(Message.id, "ids"))
    candidates = (
        select(Message.id)
        .where(due)
        .order_by(Message.priority, Message.run_at, Message.id)
        .limit(bindparam("limit", type_=Integer))
    )
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True)
    return (
        update(_MESSAGES)
        .where(_MESSAGES.c.id.in_(candidates.scalar_subquery()))
        .values(
            status=SENDING,
            claimed_by=bindparam("worker", type_=_MESSAGES.c.claimed_by.type),
            claimed_until=bindparam("lease", type_=_MESSAGES.c.claimed_until.type),
            attempts=_MESSAGES.c.attempts + 1,
            updated_at=bindparam("now", type_=_MESSAGES.c.updated_at.type),
        )
        # the content as its JSON text: one parse per distinct document instead of one per row
        .returning(*_CLAIMED_COLUMNS, cast_(_MESSAGES.c.content, Text))
    )


def claim(
    db: Session,
    *,
    worker_id: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    contents: ContentCache | None = None,
    ids: Sequence[int] | None = None,
) -> list[ClaimedMessage]:
    """Take due messages for this worker (SKIP LOCKED on PostgreSQL; SQLite's writer lock otherwise) and
    return them as plain records, content parsed once per distinct document (``contents``); with ``ids``,
    only due messages among those."""
    stmt = _claim_statement(db.get_bind().dialect.name == "postgresql", among=ids is not None)
    params: dict[str, Any] = {"now": now, "worker": worker_id, "lease": lease_until, "limit": limit}
    if ids is not None:
        params["ids"] = list(ids)
    parse = (contents or ContentCache()).parse
    rows = [
        ClaimedMessage(
            id=r[0],
            workspace_id=r[1],
            message_id=r[2],
            profile_id=r[3],
            campaign_id=r[4],
            variant=r[5],
            channel=r[6],
            topic=r[7],
            kind=r[8],
            priority=r[9],
            run_at=r[10],
            attempts=r[11],
            max_attempts=r[12],
            last_error=r[13],
            content=parse(r[14]),
        )
        for r in db.execute(stmt, params)
    ]
    rows.sort(key=lambda m: (m.priority, m.run_at, m.id))
    return rows


def stale_sending(db: Session, *, now: datetime, limit: int = 500) -> Sequence[Message]:
    """Return rows left ``sending`` past their lease (their worker died)."""
    return db.scalars(
        select(Message)
        .where(Message.status == SENDING, Message.claimed_until < now)
        .order_by(Message.id)
        .limit(limit)
    ).all()


def by_message_ids(db: Session, message_ids: Sequence[str]) -> Sequence[Message]:
    """Return rows by provider-facing message id."""
    if not message_ids:
        return []
    return db.scalars(select(Message).where(Message.message_id.in_(list(message_ids)))).all()


def take_cap(
    db: Session, *, workspace_id: int, profile_id: int, channel: str, period: str, limit: int
) -> bool:
    """Atomically count one more send against a cap; False (and nothing counted) when it is full (R9)."""
    if limit <= 0:
        return False
    stmt = _insert(db)(SendCounter).values(
        workspace_id=workspace_id, profile_id=profile_id, channel=channel, period=period, count=1
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["workspace_id", "profile_id", "channel", "period"],
        set_={"count": SendCounter.count + 1},
        where=SendCounter.count < limit,
    ).returning(SendCounter.count)
    return db.execute(stmt).scalar_one_or_none() is not None


def give_back_cap(db: Session, *, workspace_id: int, profile_id: int, channel: str, period: str) -> None:
    """Undo one count (the message it was taken for was not sent)."""
    db.execute(
        update(SendCounter)
        .where(
            SendCounter.workspace_id == workspace_id,
            SendCounter.profile_id == profile_id,
            SendCounter.channel == channel,
            SendCounter.period == period,
            SendCounter.count > 0,
        )
        .values(count=SendCounter.count - 1)
    )


def get_message(db: Session, *, workspace_id: int, message_pk: int) -> Message | None:
    """Return one of the workspace's messages."""
    return db.scalar(select(Message).where(Message.workspace_id == workspace_id, Message.id == message_pk))


def list_for_profile(
    db: Session, *, workspace_id: int, profile_id: int, limit: int, offset: int
) -> Sequence[Message]:
    """Return a profile's messages, newest first."""
    return db.scalars(
        select(Message)
        .where(Message.workspace_id == workspace_id, Message.profile_id == profile_id)
        .order_by(Message.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()


def status_counts(db: Session, *, workspace_id: int, campaign_id: int | None = None) -> dict[str, int]:
    """Count messages per status (of one campaign, or all)."""
    stmt = select(Message.status, func.count()).where(Message.workspace_id == workspace_id)
    if campaign_id is not None:
        stmt = stmt.where(Message.campaign_id == campaign_id)
    return {status: int(n) for status, n in db.execute(stmt.group_by(Message.status)).all()}


# -- claim-time batches (the Deliverer) -----------------------------------------------------------------

_COUNTERS = cast(Table, SendCounter.__table__)
CounterKey = tuple[int, int, str, str]  # workspace, profile, channel ("*": all), period


@dataclass(frozen=True, slots=True)
class RecipientRow:
    """What the deliverer needs of a live profile (read as plain columns, not ORM objects)."""

    id: int
    email: str | None
    phone: str | None
    timezone: str | None
    traits: dict[str, Any]


_RECIPIENTS = select(
    Profile.id,
    Profile.merged_into_id,
    Profile.email,
    Profile.phone,
    Profile.timezone,
    cast_(Profile.traits, Text),  # parsed with json.loads, without the type's result processor
).where(one_of(Profile.id, "ids"))


def live_recipients(db: Session, profile_ids: Collection[int]) -> dict[int, RecipientRow]:
    """Return the live profile behind each id (merged-away profiles lead to their survivor, at most 10
    hops); ids whose profile is gone are absent."""
    rows: dict[int, Any] = {}
    wanted = set(profile_ids)
    for _hop in range(11):
        missing = sorted(wanted - rows.keys())
        if not missing:
            break
        for start in range(0, len(missing), 5000):
            for found in db.execute(_RECIPIENTS, {"ids": missing[start : start + 5000]}):
                rows[int(found[0])] = found
        wanted = {int(r[1]) for r in rows.values() if r[1] is not None}
    out: dict[int, RecipientRow] = {}
    for pid in profile_ids:
        row = rows.get(pid)
        hops = 0
        while row is not None and row[1] is not None and hops < 10:
            row, hops = rows.get(int(row[1])), hops + 1
        if row is not None:
            traits = json.loads(row[5]) if row[5] else {}
            out[pid] = RecipientRow(
                int(row[0]), row[2], row[3], row[4], traits if isinstance(traits, dict) else {}
            )
    return out


_SUPPRESSED = select(Suppression.workspace_id, Suppression.kind, Suppression.value_hash).where(
    Suppression.workspace_id == bindparam("ws"), one_of(Suppression.value_hash, "hashes")
)


def suppressed(db: Session, keys: Collection[tuple[int, str, str]]) -> set[tuple[int, str, str]]:
    """Return which (workspace, kind, value hash) are on the suppression list (R17/R18)."""
    found: set[tuple[int, str, str]] = set()
    for workspace_id in {k[0] for k in keys}:
        hashes = sorted({k[2] for k in keys if k[0] == workspace_id})
        for start in range(0, len(hashes), 5000):
            found.update(
                (int(w), str(k), str(h))
                for w, k, h in db.execute(
                    _SUPPRESSED, {"ws": workspace_id, "hashes": hashes[start : start + 5000]}
                )
            )
    return found


def lock_counters(db: Session, keys: Collection[CounterKey]) -> dict[CounterKey, int]:
    """Create missing cap counters at 0, lock them all (in key order, so concurrent workers cannot
    deadlock) until the transaction ends, and return their counts (R9: the check and the count are one
    atomic step; SQLite's writer lock does the same)."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    found = insert_rows(
        db,
        _COUNTERS,
        ("workspace_id", "profile_id", "channel", "period", "count"),
        [(*key, 0) for key in ordered],
        conflict="ON CONFLICT (workspace_id, profile_id, channel, period) DO UPDATE SET count = "
        "send_counters.count",
        returning="workspace_id, profile_id, channel, period, count",
    )
    return {(int(w), int(p), str(c), str(per)): int(n) for w, p, c, per, n in found}


def set_counters(db: Session, counts: Mapping[CounterKey, int]) -> None:
    """Write counts of counters this transaction locked with :func:`lock_counters` (one multi-row upsert:
    the rows exist and are locked, so every row takes the update)."""
    if not counts:
        return
    insert_rows(
        db,
        _COUNTERS,
        ("workspace_id", "profile_id", "channel", "period", "count"),
        [(*key, n) for key, n in sorted(counts.items())],
        conflict="ON CONFLICT (workspace_id, profile_id, channel, period) DO UPDATE SET count = "
        "excluded.count",
    )


#: Rows per statement of :func:`update_messages` on SQLite (bound parameters stay well under 32,766).
UPDATE_CHUNK = 500
_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)  # SQLite learnt UPDATE … FROM in 3.33
_TIME_COLUMNS = frozenset(c.name for c in _MESSAGES.c if isinstance(c.type, UTCDateTime))
_JSON_COLUMNS = frozenset(c.name for c in _MESSAGES.c if isinstance(c.type, JSON))


def update_messages(db: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write column values to outbox rows by id: ``rows`` are dicts with ``id`` and the same other keys.

    One statement per batch, no ORM objects: ``UPDATE … FROM`` a list of rows (PostgreSQL: one JSON array
    read with ``jsonb_array_elements``, as :func:`insert_rows` does; SQLite: a ``VALUES`` list), values
    bound as the driver takes them. A per-row ``executemany`` cost the deliverer a tenth of its time on
    PostgreSQL (psycopg's pipeline) for the few statements of each batch."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != "id"]
    conn = db.connection()
    postgres = conn.dialect.name == "postgresql"
    if not postgres and not _UPDATE_FROM:
        stmt = (
            update(_MESSAGES)
            .where(_MESSAGES.c.id == bindparam("_id"))
            .values({c: bindparam(f"_{c}", type_=_MESSAGES.c[c].type) for c in columns})
        )
        db.execute(stmt, [{"_id": r["id"], **{f"_{c}": r[c] for c in columns}} for r in rows])
        return
    values = BulkValues(db)

    def ready(column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in _TIME_COLUMNS:
            return values.time(value)
        if column in _JSON_COLUMNS:
            return values.json(value)
        return value

    data = [[r["id"], *(ready(c, r[c]) for c in columns)] for r in rows]
    if postgres:
        sets = ", ".join(f"{c} = {pg_pick(_MESSAGES, c, i)}" for i, c in enumerate(columns, start=1))
        sql = (
            f"UPDATE messages SET {sets} FROM jsonb_array_elements(%s::jsonb) AS r "  # noqa: S608
            "WHERE messages.id = (r->>0)::bigint"
        )
        conn.exec_driver_sql(sql, (json.dumps(data, separators=(",", ":")),))
        return
    names = ", ".join(["id", *columns])
    sets = ", ".join(f"{c} = v.{c}" for c in columns)
    one = "(" + ", ".join("?" for _ in range(len(columns) + 1)) + ")"
    for start in range(0, len(data), UPDATE_CHUNK):
        part = data[start : start + UPDATE_CHUNK]
        sql = (
            f"WITH v({names}) AS (VALUES {', '.join([one] * len(part))}) "  # noqa: S608
            f"UPDATE messages SET {sets} FROM v WHERE messages.id = v.id"
        )
        conn.exec_driver_sql(sql, tuple(value for row in part for value in row))


_STILL_CLAIMED = select(Message.id).where(
    one_of(Message.id, "ids"), Message.status == SENDING, Message.claimed_by == bindparam("worker")
)
_STILL_CLAIMED_PG = _STILL_CLAIMED.with_for_update()


def still_claimed(db: Session, *, worker_id: str, ids: Collection[int]) -> set[int]:
    """Return which of ``ids`` are still ``sending`` for ``worker_id`` (locked on PostgreSQL until commit);
    the others were settled elsewhere (recovered as unknown after a long stall)."""
    out: set[int] = set()
    ordered = sorted(ids)
    stmt = _STILL_CLAIMED_PG if db.get_bind().dialect.name == "postgresql" else _STILL_CLAIMED
    for start in range(0, len(ordered), 5000):
        out.update(
            int(pk) for pk in db.scalars(stmt, {"ids": ordered[start : start + 5000], "worker": worker_id})
        )
    return out
