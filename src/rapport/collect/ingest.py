"""Ingest: turn accepted messages into event rows, dedupe on (workspace, messageId), append, quarantine.

Ingest validates and appends only; identity resolution, traits and segments happen in the processor from
the pending events (see docs/architecture.md). Three entry points:

* ``prepare`` (pure): messages → an ``IngestWork`` (event rows, quarantine rows, audit entries) plus what
  to answer the client;
* ``write_works``: writes several units in one transaction (the committer calls it from its thread);
* ``append_events`` / ``add_quarantined``: the statements, for other edges that own a session (replay,
  imports): ``INSERT … ON CONFLICT (workspace_id, message_id) DO NOTHING`` on both SQLite and PostgreSQL,
  so a repeat, even inside one batch, is accepted and not stored twice (R1).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import operator
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import psycopg
from sqlalchemy import JSON, Connection, Engine, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from rapport.accounts.principal import Principal
from rapport.audit import service as audit_service
from rapport.collect import codec
from rapport.collect.normalize import Envelope, Normalized, Rejected, normalize
from rapport.db.base import UTCDateTime, pg_insert_from_json
from rapport.db.engine import write_turn
from rapport.errors import BadRequest
from rapport.kit.clock import as_utc
from rapport.kit.requestctx import current_request_id, reset_request_id, set_request_id
from rapport.models import Event, QuarantinedEvent

log = logging.getLogger("rapport.collect.ingest")

#: The consent scope that lets a sender grant consent (R16); write keys never hold it.
CONSENT_SCOPE = "consent:write"


class StorageRejected(BadRequest):
    """The database refused an event that passed validation (a gap in validation; the client gets 400)."""

    code = "storage_rejected"


@dataclass(frozen=True, slots=True)
class QuarantineNote:
    """What the client is told about one quarantined message."""

    index: int
    message_id: str | None
    reason: str
    code: str

    def as_dict(self, quarantine_id: int | None = None) -> dict[str, Any]:
        """Render for the batch answer."""
        out: dict[str, Any] = {"index": self.index, "messageId": self.message_id, "reason": self.reason}
        if quarantine_id is not None:
            out["id"] = quarantine_id
        return out


@dataclass
class IngestWork:
    """One request's writes: event rows, quarantine rows and audit entries, committed together."""

    events: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Return the number of rows this unit writes (at least 1)."""
        return max(1, len(self.events) + len(self.quarantined))


@dataclass
class Prepared:
    """The outcome of validating one request's messages."""

    work: IngestWork
    accepted: int
    notes: list[QuarantineNote]
    rejections: list[Rejected]


def may_grant_consent(principal: Principal) -> bool:
    """Tell whether this sender may grant consent: never a write key (R16)."""
    return principal.kind != "write_key" and principal.can(CONSENT_SCOPE)


def quarantine_row(
    message: Any,
    rejected: Rejected,
    *,
    workspace_id: int,
    principal: Principal,
    received_at: datetime,
    route_type: str | None,
    envelope: Envelope | None,
    index: int | None,
    source: str = "api",
) -> dict[str, Any]:
    """Build the quarantine row that keeps a bad message with its reason and what replay needs."""
    details: dict[str, Any] = {
        "code": rejected.code,
        "errors": [e.as_dict() for e in rejected.errors],
        "messageId": rejected.message_id,
        "index": index,
        "route_type": route_type,
        "sender": {"kind": principal.kind, "id": principal.id, "may_grant": may_grant_consent(principal)},
    }
    if envelope is not None and (envelope.sent_at is not None or envelope.context):
        details["envelope"] = {"sentAt": envelope.sent_at, "context": dict(envelope.context or {})}
    return {
        "workspace_id": workspace_id,
        # ASCII-escaped: keeps unpaired surrogates and NUL storable as text on both databases.
        "payload": json.dumps(message, ensure_ascii=True, separators=(",", ":")),
        "reason": rejected.reason[:500],
        "details": details,
        "source": source,
        "received_at": received_at,
    }


def consent_audit(principal: Principal, normalized: Normalized, *, workspace_id: int) -> dict[str, Any]:
    """Build the audit entry recording a consent grant refused because a write key sent it (R16)."""
    return {
        "workspace_id": workspace_id,
        "actor": principal.actor,
        "action": "consent.grant_refused",
        "target_type": "event",
        "target_id": normalized.message_id[:100],
        "details": {
            "messageId": normalized.message_id,
            "type": normalized.row["type"],
            "refused": [{"path": s.path, "subject": s.subject} for s in normalized.refused_grants],
            "reason": "write keys can withdraw consent but never grant it",
        },
        "_request_id": current_request_id(),
    }


def prepare(
    messages: Sequence[Any],
    *,
    principal: Principal,
    received_at: datetime,
    route_type: str | None = None,
    envelope: Envelope | None = None,
    raw_size: int | None = None,
    source: str = "api",
    prechecked: bool = False,
    fast_json: bool = False,
) -> Prepared:
    """Validate ``messages``: good ones become event rows, bad ones quarantine rows (R4)."""
    workspace_id = principal.workspace_id
    grant_ok = may_grant_consent(principal)
    work = IngestWork()
    notes: list[QuarantineNote] = []
    rejections: list[Rejected] = []
    for index, message in enumerate(messages):
        result = normalize(
            message,
            received_at=received_at,
            route_type=route_type,
            envelope=envelope,
            raw_size=raw_size,
            may_grant_consent=grant_ok,
            source=source,
            prechecked=prechecked,
            fast_json=fast_json,
        )
        if isinstance(result, Rejected):
            rejections.append(result)
            notes.append(QuarantineNote(index, result.message_id, result.reason, result.code))
            work.quarantined.append(
                quarantine_row(
                    message,
                    result,
                    workspace_id=workspace_id,
                    principal=principal,
                    received_at=received_at,
                    route_type=route_type,
                    envelope=envelope,
                    index=index,
                    source=source,
                )
            )
            continue
        result.row["workspace_id"] = workspace_id
        work.events.append(result.row)
        if result.refused_grants:
            work.audits.append(consent_audit(principal, result, workspace_id=workspace_id))
    return Prepared(work=work, accepted=len(work.events), notes=notes, rejections=rejections)


def append_events(db: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert event rows, ignoring any whose (workspace_id, message_id) is already stored (R1)."""
    if rows:
        _insert_rows(db.connection(), rows)


def append_events_returning(db: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert event rows that carry every column as :func:`append_events` does and return the id of each
    row it inserted by its messageId (``RETURNING``): a row already stored, by this transaction's
    check or by a writer that committed since, is skipped and absent from the answer."""
    found: dict[str, int] = {}
    if rows and not _driver_insert(db.connection(), rows, found):
        raise ValueError("append_events_returning takes rows of every events column (SQLite, PostgreSQL)")
    return found


#: What an insert that reports its rows returns: (message_id, id) of each row inserted.
_RETURNING = " RETURNING message_id, id"


def _insert_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if _driver_insert(conn, rows):
        return
    rows = [_as_objects(row) for row in rows]
    table = cast(Table, Event.__table__)
    if conn.dialect.name == "postgresql":
        stmt: Any = pg_insert(table).on_conflict_do_nothing(index_elements=["workspace_id", "message_id"])
    else:
        stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=["workspace_id", "message_id"])
    conn.execute(stmt, list(rows))


def _as_objects(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its JSON columns as objects (Core encodes them itself; an import's reader may have sent
    them as their stored text)."""
    encoded = [name for name, kind in _event_columns() if kind == "json" and isinstance(row.get(name), str)]
    if not encoded:
        return row
    return {**row, **{name: json.loads(row[name]) for name in encoded}}


@functools.cache
def _event_columns() -> tuple[tuple[str, str], ...]:
    """The events columns (but id) with how to bind each: json, time or plain."""
    out = []
    for column in cast(Table, Event.__table__).columns:
        if column.name == "id":
            continue
        kind = (
            "json"
            if isinstance(column.type, JSON)
            else "time"
            if isinstance(column.type, UTCDateTime)
            else ""
        )
        out.append((column.name, kind))
    return tuple(out)


def _sqlite_time(value: datetime | None) -> str | None:
    # The text SQLAlchemy's SQLite DateTime stores (and UTCDateTime reads back as UTC).
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = as_utc(value)
    return value.isoformat(" ", "microseconds")[:-6]  # drop "+00:00": one call instead of two


#: Rows per multi-row INSERT: 256 x 17 columns stays far under both drivers' parameter limits.
_CHUNK = 256


@functools.cache
def _insert_sql(dialect: str, rows: int = 1, tail: str = "") -> str:
    """The driver-level multi-row INSERT … ON CONFLICT DO NOTHING (then ``tail``); names come from the
    table, values bound."""
    columns = _event_columns()
    names = ", ".join(f'"{name}"' for name, _kind in columns)
    one = "(" + ", ".join(["?" if dialect == "sqlite" else "%s"] * len(columns)) + ")"
    conflict = " ON CONFLICT (workspace_id, message_id) DO NOTHING"
    return "INSERT INTO events (" + names + ") VALUES " + ", ".join([one] * rows) + conflict + tail  # noqa: S608


def _chunks(n: int) -> Iterator[int]:
    """Split ``n`` rows into chunks of _CHUNK then powers of two: few distinct statements, all cached."""
    while n >= _CHUNK:
        yield _CHUNK
        n -= _CHUNK
    size = _CHUNK // 2
    while n:
        if n >= size:
            yield size
            n -= size
        size //= 2


@functools.cache
def _column_plan() -> tuple[Callable[[dict[str, Any]], tuple[Any, ...]], tuple[int, ...], tuple[int, ...]]:
    """How to flatten a row: one C-level getter for every column, then the JSON and time positions."""
    columns = _event_columns()
    getter = operator.itemgetter(*(name for name, _kind in columns))
    json_at = tuple(i for i, (_name, kind) in enumerate(columns) if kind == "json")
    time_at = tuple(i for i, (_name, kind) in enumerate(columns) if kind == "time")
    return getter, json_at, time_at


def _driver_values(rows: Sequence[dict[str, Any]]) -> list[Any]:
    """Flatten ``rows`` into the bound values of SQLite's driver INSERT, column by column."""
    getter, json_at, time_at = _column_plan()
    dumps = codec.dumps_text
    times: dict[datetime, str | None] = {}  # received_at is shared by a whole request
    values: list[Any] = []
    extend = values.extend
    for row in rows:
        flat = list(getter(row))
        for i in json_at:
            value = flat[i]  # text already when the import's reader encoded it (import_pipeline.encode)
            flat[i] = value if value.__class__ is str else dumps(value)
        for i in time_at:
            value = flat[i]
            if value is not None:
                text = times.get(value)
                if text is None:
                    text = times[value] = _sqlite_time(value)
                flat[i] = text
        extend(flat)
    return values


def _bucket(n: int, largest: int) -> int:
    """Round ``n`` rows up to a statement size: a power of two up to 256, then a multiple of 256."""
    if n > _CHUNK:
        return min(-(-n // _CHUNK) * _CHUNK, largest)
    return 1 << (n - 1).bit_length()


@functools.cache
def _largest_statement(limit: int) -> int:
    """The most rows one SQLite statement may bind under the connection's variable ``limit``."""
    return min(2048, limit // len(_event_columns()) // _CHUNK * _CHUNK)


def _sqlite_one_statement(raw: sqlite3.Connection, rows: Sequence[dict[str, Any]]) -> bool:
    """Commit ``rows`` as ONE autocommit INSERT statement on SQLite; False when they do not fit in one.

    A single statement outside a transaction is its own transaction: atomic, durable at its end (the
    ingest connection syncs fully), and it takes the write lock up front like BEGIN IMMEDIATE. It is
    also one database call instead of BEGIN, the chunks and COMMIT: the committer's thread releases the
    GIL around every call and, behind a busy event loop, each retake costs up to a switch interval.
    Statement sizes come in buckets so a handful of prepared statements serve every group; a partial
    bucket is filled with copies of the last row, which ON CONFLICT DO NOTHING skips like any repeat.
    """
    if raw.in_transaction:
        return False
    largest = _largest_statement(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    if not rows or len(rows) > largest:
        return False
    size = _bucket(len(rows), largest)
    values = _driver_values(rows)
    width = len(_event_columns())
    if size > len(rows):
        values.extend(values[-width:] * (size - len(rows)))
    cursor = raw.cursor()
    try:
        with write_turn(raw):
            cursor.execute(_insert_sql("sqlite", size), values)
    finally:
        cursor.close()
    return True


def _has_every_column(rows: Sequence[dict[str, Any]]) -> bool:
    return bool(rows) and all(name in rows[0] for name, _kind in _event_columns())


def _driver_insert(
    conn: Connection, rows: Sequence[dict[str, Any]], returned: dict[str, int] | None = None
) -> bool:
    """Insert through the driver: the hot path, several times cheaper than Core. SQLite: multi-row INSERTs;
    PostgreSQL: one statement over a JSON array (:func:`_json_insert`).

    One statement per chunk of rows, not one per row: the database does a chunk's work in one call, with
    the GIL released (executemany releases and retakes it per row, which stalls behind a busy event
    loop). Same stored values as the Core path (JSON as compact text, which PostgreSQL reads into JSONB;
    UTC times); a repeat inside one statement is skipped like any other. Used only when every row carries
    every column; returns False when it does not apply. ``returned``, when given, is filled with the id of
    each row inserted by its messageId (``RETURNING``).
    """
    dialect = conn.dialect.name
    if dialect not in {"sqlite", "postgresql"} or not _has_every_column(rows):
        return False
    raw = conn.connection.driver_connection
    assert raw is not None
    if dialect == "postgresql":
        _json_insert(raw, rows, returned)
        return True
    values = _driver_values(rows)
    width = len(_event_columns())
    tail = "" if returned is None else _RETURNING
    cursor = raw.cursor()
    start = 0
    try:
        for size in _chunks(len(rows)):
            cursor.execute(_insert_sql(dialect, size, tail), values[start : start + size * width])
            if returned is not None:
                returned.update(cursor.fetchall())
            start += size * width
    finally:
        cursor.close()
    return True


@functools.cache
def _pg_insert_sql(tail: str = "") -> str:
    """PostgreSQL: one INSERT … SELECT over a JSON array of rows (values in ``_event_columns`` order)."""
    columns = [name for name, _kind in _event_columns()]
    return pg_insert_from_json(
        cast(Table, Event.__table__), columns, "ON CONFLICT (workspace_id, message_id) DO NOTHING" + tail
    )


def _json_insert(raw: Any, rows: Sequence[dict[str, Any]], returned: dict[str, int] | None = None) -> None:
    """PostgreSQL: insert ``rows`` as ONE statement over one JSON array (``orjson`` writes it in C).

    Measured against the COPY into a staging table it replaces (interleaved, one connection, a transaction
    per call): 10 events 1.64 → 0.82 ms and 100 events 6.3 → 4.1 ms a transaction, with half the client CPU
    (0.53 → 0.28 and 1.85 → 0.82 ms); a multi-row VALUES with bound parameters took 1.30 and 13.4 ms. The
    JSON columns' objects are written by the same orjson call (a value it cannot hold exactly, or a column
    sent as text, takes :func:`_with_fragments`), times as RFC 3339 (naive ones as UTC, as
    ``UTCDateTime`` stores them). Arrival order (``ORDER BY n``) gives the ids; a repeat of
    (workspace_id, messageId) is skipped like any other (R1). ``returned``, when given, is filled with the
    id of each row inserted by its messageId.
    """
    getter, json_at, _time_at = _column_plan()
    data = [getter(row) for row in rows]
    payload: bytes | None = None
    if not any(values[i].__class__ is str for values in data for i in json_at):
        with contextlib.suppress(TypeError):  # orjson.JSONEncodeError: an integer past 64 bits
            payload = orjson.dumps(data, option=orjson.OPT_NAIVE_UTC)  # the JSON columns' objects too
    if payload is None:
        payload = orjson.dumps(_with_fragments(data, json_at), option=orjson.OPT_NAIVE_UTC)
    with raw.cursor() as cursor:
        cursor.execute(_pg_insert_sql("" if returned is None else _RETURNING), (payload.decode("utf-8"),))
        if returned is not None:
            returned.update(cursor.fetchall())


def _with_fragments(data: list[tuple[Any, ...]], json_at: tuple[int, ...]) -> list[list[Any]]:
    """The rows with each JSON column as a fragment of its stored text: text an import's reader sent as it
    is, objects through ``codec.dumps_text`` (exact for integers past 64 bits)."""
    dumps = codec.dumps_text
    fragment = orjson.Fragment
    out = []
    for values in data:
        flat = list(values)
        for i in json_at:
            value = flat[i]
            flat[i] = fragment(value if value.__class__ is str else dumps(value))
        out.append(flat)
    return out


def add_quarantined(db: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert quarantine rows and return their ids."""
    if not rows:
        return []
    objects = [QuarantinedEvent(**row) for row in rows]
    db.add_all(objects)
    db.flush()
    return [obj.id for obj in objects]


def _record_audits(db: Session, audits: Sequence[dict[str, Any]]) -> None:
    for entry in audits:
        kwargs = {k: v for k, v in entry.items() if k != "_request_id"}
        token = set_request_id(entry.get("_request_id"))
        try:
            audit_service.record(db, **kwargs)
        finally:
            reset_request_id(token)


@contextmanager
def durable_connection(engine: Engine, *, full_sync: bool = True) -> Iterator[Connection]:
    """Yield a connection whose commits are durable: on SQLite it syncs fully while ingest holds it.

    The shared engine runs SQLite WAL with ``synchronous=NORMAL`` (survives a process crash, not a power
    cut); acknowledging an event promises more, so ingest commits with ``synchronous=FULL``. Group commit
    pays the extra fsync once per transaction, not once per event. ``full_sync=False`` keeps NORMAL
    (an acknowledged event then survives a crash of Rapport but not of the machine).
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite" and full_sync
        raw = conn.connection.driver_connection if sqlite else None
        if raw is not None:
            raw.execute("PRAGMA synchronous=FULL")  # outside a transaction, as SQLite requires
        try:
            yield conn
        finally:
            if raw is not None and not conn.invalidated:
                raw.execute("PRAGMA synchronous=NORMAL")


def write_works(engine: Engine, works: Sequence[IngestWork], *, full_sync: bool = True) -> list[list[int]]:
    """Write several units in one durable transaction; return each unit's quarantine ids."""
    with durable_connection(engine, full_sync=full_sync) as conn:
        return _write_on(conn, works)


#: The PostgreSQL channel ingest notifies when it commits pending events; the processor's worker lane
#: LISTENs on it (``rapport.worker.runner``) and starts at once instead of at its next poll.
PENDING_CHANNEL = "rapport_pending_events"
_NOTIFY_PENDING = f"NOTIFY {PENDING_CHANNEL}"


def _write_on(conn: Connection, works: Sequence[IngestWork]) -> list[list[int]]:
    events = [row for work in works for row in work.events]
    notify = bool(events) and conn.dialect.name == "postgresql"  # delivered at commit, never before
    if not any(work.quarantined or work.audits for work in works):
        # The common case: events only. A bare connection costs far less than an ORM session, and on
        # SQLite one statement without BEGIN/COMMIT less still.
        if conn.dialect.name == "sqlite" and not conn.in_transaction() and _has_every_column(events):
            raw = conn.connection.driver_connection
            if isinstance(raw, sqlite3.Connection) and _sqlite_one_statement(raw, events):
                return [[] for _ in works]
        with conn.begin():
            if events:
                _insert_rows(conn, events)
            if notify:
                conn.exec_driver_sql(_NOTIFY_PENDING)
        return [[] for _ in works]
    with Session(bind=conn, expire_on_commit=False) as db:
        append_events(db, events)
        ids = [add_quarantined(db, work.quarantined) for work in works]
        for work in works:
            _record_audits(db, work.audits)
        if notify:
            db.connection().exec_driver_sql(_NOTIFY_PENDING)
        db.commit()
    return ids


class IngestWriter:
    """Writes the committer's groups through one held connection: no pool round trip per group.

    The committer calls ``write`` from its one thread. The connection is checked out at the first group
    (on SQLite it is switched to ``synchronous=FULL`` once, see ``durable_connection``), kept while
    groups keep coming, and given back to the pool by ``release`` (the committer calls it after a second
    without work, and on stop) or after any failed write (it may be broken); the next group then checks
    out a fresh one, which the pool pings on PostgreSQL.
    """

    def __init__(self, engine: Engine, *, full_sync: bool = True) -> None:
        self.engine = engine
        self.full_sync = full_sync
        self._held: ExitStack | None = None
        self._conn: Connection | None = None

    def write(self, works: Sequence[IngestWork]) -> list[list[int]]:
        """Write several units in one durable transaction; return each unit's quarantine ids."""
        if self._conn is None:
            held = ExitStack()
            self._conn = held.enter_context(durable_connection(self.engine, full_sync=self.full_sync))
            self._held = held
        try:
            return _write_on(self._conn, works)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the held connection back to the pool (safe to call at any time from the writing thread)."""
        held, self._held, self._conn = self._held, None, None
        if held is None:
            return
        try:
            held.close()  # durable_connection's cleanup: NORMAL again, back to the pool
        except Exception as exc:  # a broken connection: the pool discards it
            log.warning("could not release the ingest connection: %s", type(exc).__name__)


def is_data_error(error: Exception) -> bool:
    """Tell whether a failed write may be caused by one unit's data (then units are retried one by one).

    Covers SQLAlchemy's wrapped errors and the drivers' own (the bulk paths talk to the driver directly).
    """
    if isinstance(error, StatementError) and isinstance(error.orig, UnicodeError | ValueError | TypeError):
        return True
    return isinstance(error, _DATA_ERRORS)


_DATA_ERRORS = (
    DataError,
    IntegrityError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
    psycopg.IntegrityError,
    psycopg.DataError,
)
