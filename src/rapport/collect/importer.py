"""Bulk import of profiles and events from any iterable of rows, in constant memory.

Rows are taken in batches (``batch_size``, a few thousand); each batch is one transaction: validate,
resolve identities in bulk (:mod:`rapport.collect.resolution`), write with executemany, commit. Imported
events arrive already PROCESSED and linked to their profile, so an import does not flood the processor.

Idempotent: events are keyed by ``messageId`` (derived from the row's content when absent, so re-running
the same file dedupes); profiles are upserted by identifier and an unchanged trait value is not rewritten.
Rows carrying an erased (suppressed) identifier are refused (R17) and reported.

The functions the demo and benchmarks call::

    report = import_profile_rows(runtime, workspace_id=ws, rows=[{"email": "a@x.io", "plan": "pro"}])
    report = import_event_rows(runtime, workspace_id=ws, rows=[{"type": "track", "event": "Order",
                                                                "userId": "u1", "properties": {...}}])
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import text
from sqlalchemy.orm import Session

from rapport.collect import identity as ident
from rapport.collect import ingest
from rapport.collect import normalize as norm
from rapport.collect.processor import (
    BatchApplied,
    ProcessingHooks,
    alias_kinds,
    hooks_for,
    lock_workspace,
    rules_for,
    run_hooks,
    settings_and_rules,
    touch_for_event,
    touch_of,
)
from rapport.collect.resolution import Resolution, Touch, resolve_batch
from rapport.kit import fastjson
from rapport.kit.gcwork import bulk_gc
from rapport.models.event import PROCESSED
from rapport.runtime import Runtime

DEFAULT_BATCH = 5000
#: How many row errors the report keeps in memory; all of them go to ``on_error``.
KEPT_ERRORS = 200

Progress = Callable[[int], None]
#: A row carrying this key could not be read (bad CSV/JSON line); its value is the reason.
PARSE_ERROR_KEY = "__rapport_parse_error__"
#: Set by the JSONL reader on an event it parsed with orjson from a line without a ``\u0000`` escape:
#: storable as it is (no NaN, NUL or lone surrogate), so validation only measures its size.
FAST_JSON_KEY = "__rapport_fast_json__"

_PROFILE_ID_FIELDS = {
    "user_id": ident.USER_ID,
    "userid": ident.USER_ID,
    "userId": ident.USER_ID,
    "anonymous_id": ident.ANONYMOUS_ID,
    "anonymousId": ident.ANONYMOUS_ID,
    "email": ident.EMAIL,
    "phone": ident.PHONE,
    "device_token": ident.DEVICE_TOKEN,
}
_TIME_FIELDS = ("updated_at", "updatedAt", "timestamp")


@dataclass(frozen=True, slots=True)
class RowError:
    """One refused row: its number (1 = first data row), the column at fault ('' for the row) and why."""

    row: int
    column: str
    reason: str


@dataclass
class ImportReport:
    """What an import did."""

    kind: str
    rows: int = 0
    imported: int = 0
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    suppressed: int = 0
    failed: int = 0
    merges: int = 0
    seconds: float = 0.0
    errors: list[RowError] = field(default_factory=list)

    def add_error(self, error: RowError, sink: Callable[[RowError], None] | None) -> None:
        """Count a refused row, keep the first few, and hand it to ``sink``."""
        self.failed += 1
        if len(self.errors) < KEPT_ERRORS:
            self.errors.append(error)
        if sink is not None:
            sink(error)

    def as_dict(self) -> dict[str, Any]:
        """Render for job results and the API (without the kept errors)."""
        return {
            "kind": self.kind,
            "rows": self.rows,
            "imported": self.imported,
            "created": self.created,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "failed": self.failed,
            "merges": self.merges,
            "seconds": round(self.seconds, 3),
        }


def batches(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[tuple[int, Mapping[str, Any]]]]:
    """Group rows in lists of ``size`` (row number, row) pairs; row 1 is the first data row."""
    batch: list[tuple[int, Mapping[str, Any]]] = []
    for number, row in enumerate(rows, start=1):
        batch.append((number, row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _RowView:
    """Attribute access to a normalised event row for ``touch_for_event`` (no copy; ``id`` is None)."""

    __slots__ = ("_row",)

    def __init__(self, row: dict[str, Any]) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return self._row.get(name)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _row_time(row: Mapping[str, Any], now: datetime) -> datetime:
    for name in _TIME_FIELDS:
        value = row.get(name)
        if not _blank(value):
            return norm.parse_time(value)
    return now


def profile_touch(
    row: Mapping[str, Any], rules: ident.IdentityRules, now: datetime
) -> tuple[Touch | None, list[tuple[str, str]]]:
    """Turn one profile row into a touch, or return the (column, reason) errors that refuse it."""
    identifiers: list[tuple[str, str]] = []
    traits: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for key, value in row.items():
        if _blank(value):
            continue
        kind = _PROFILE_ID_FIELDS.get(key) or (key if key.startswith(ident.EXTERNAL + ":") else None)
        if kind is not None:
            try:
                normalised = ident.normalize(kind, value, rules)
            except ident.InvalidIdentifier as exc:
                errors.append((key, str(exc)))
                continue
            if normalised is not None:
                identifiers.append((kind, normalised))
                if kind in (ident.EMAIL, ident.PHONE):
                    traits[kind] = normalised
            continue
        if key in _TIME_FIELDS:
            continue
        traits[str(key)[:200]] = value
    try:
        at = _row_time(row, now)
    except ValueError as exc:
        errors.append(("updated_at", str(exc)))
        at = now
    if errors:
        return None, errors
    if not identifiers:
        return None, [("", "no usable identifier (user_id, email, phone, anonymous_id or external:*)")]
    return Touch(
        identifiers=ident.ordered(identifiers, rules),
        at=at,
        traits=traits or None,
        seen=False,
        source="import",
    ), []


@dataclass
class Prepared:
    """One batch after the pure part of an import (reading, validation, identifiers): what the database
    part needs. Built in this process or, for big files, in a reader process (:mod:`.import_pipeline`)."""

    rows: int
    numbers: list[int] = field(default_factory=list)
    touches: list[Touch | None] = field(default_factory=list)  # events: None = an alias, built later
    events: list[dict[str, Any]] = field(default_factory=list)  # events: the normalised rows
    errors: list[RowError] = field(default_factory=list)
    duplicates: int = 0


def prepare_profiles(
    batch: list[tuple[int, Mapping[str, Any]]], rules: ident.IdentityRules, now: datetime
) -> Prepared:
    """Validate a batch of profile rows into touches (pure)."""
    out = Prepared(rows=len(batch))
    for number, row in batch:
        if PARSE_ERROR_KEY in row:
            out.errors.append(RowError(number, "", str(row[PARSE_ERROR_KEY])))
            continue
        touch, errors = profile_touch(row, rules, now)
        if touch is None:
            column, reason = errors[0]
            out.errors.append(RowError(number, column, reason))
            continue
        out.touches.append(touch)
        out.numbers.append(number)
    return out


def import_profile_rows(
    runtime: Runtime,
    *,
    workspace_id: int,
    rows: Iterable[Mapping[str, Any]],
    progress: Progress | None = None,
    on_error: Callable[[RowError], None] | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> ImportReport:
    """Create or update profiles from rows of identifiers (user_id, email, phone, anonymous_id,
    external:<system>) and traits (every other key); ``updated_at`` gives the traits' time."""
    rules = load_rules(runtime, workspace_id)
    prepared = (prepare_profiles(b, rules, runtime.clock.now()) for b in batches(rows, batch_size))
    return apply_profiles(
        runtime, workspace_id=workspace_id, prepared=prepared, progress=progress, on_error=on_error
    )


def load_rules(runtime: Runtime, workspace_id: int) -> ident.IdentityRules:
    """Read the workspace's identity rules once for an import (a short read-only transaction)."""
    with runtime.read_sessions() as db:
        return rules_for(db, workspace_id)


def apply_profiles(
    runtime: Runtime,
    *,
    workspace_id: int,
    prepared: Iterable[Prepared],
    progress: Progress | None = None,
    on_error: Callable[[RowError], None] | None = None,
) -> ImportReport:
    """Write prepared profile batches, one transaction each: resolve identities, upsert, hooks, commit."""
    report = ImportReport(kind="profiles")
    started = time.perf_counter()
    hooks = hooks_for(runtime)
    statistics = _EarlyStatistics(runtime, _PROFILE_TABLES)
    with bulk_gc():
        for batch in prepared:
            statistics.before_batch(written=report.imported)
            for error in batch.errors:
                report.add_error(error, on_error)
            now = runtime.clock.now()
            with runtime.sessions() as db:
                lock_workspace(db, workspace_id, wait=True)
                rules = rules_for(db, workspace_id)
                touches = [t for t in batch.touches if t is not None]
                outcome = _resolve(db, workspace_id, rules, touches, now, hooks)
                for number, suppressed in zip(batch.numbers, outcome.suppressed, strict=True):
                    if suppressed:
                        report.suppressed += 1
                        report.add_error(RowError(number, "", "identifier was erased (suppressed)"), on_error)
                report.imported += sum(1 for p in outcome.profile_ids if p is not None)
                report.created += outcome.created
                report.updated += max(0, len(outcome.changed_traits) - outcome.created)
                report.merges += len(outcome.merges)
                _after_apply(runtime, db, workspace_id, [], outcome.touched, outcome.changed_traits, outcome)
                db.commit()
            report.rows += batch.rows
            if progress is not None:
                progress(report.rows)
    refresh_statistics(runtime, _PROFILE_TABLES, changed=report.imported)
    report.seconds = time.perf_counter() - started
    return report


#: Rows an import must have written before it refreshes the planner's statistics (PostgreSQL).
ANALYZE_AFTER = 1000
_PROFILE_TABLES = ("profiles", "identities", "trait_history")
_EVENT_TABLES = ("events", *_PROFILE_TABLES)


def refresh_statistics(runtime: Runtime, tables: Sequence[str], *, changed: int) -> None:
    """``ANALYZE`` the tables a bulk import filled (PostgreSQL, from ``ANALYZE_AFTER`` rows on).

    Autovacuum analyses a table only after a minute's nap and 10% of it changed, and until then the
    planner works from the statistics of the table before the load: right after importing a customer base
    it took the workspace's thousands of profiles for a handful and planned the real-time batch's
    profile-keyed reads and writes as scans of the whole workspace (B5: the p99 from event to segment entry
    rose by a third). SQLite keeps no statistics; its queries are shaped for that (``db.planner``).
    """
    if changed < ANALYZE_AFTER or runtime.engine.dialect.name != "postgresql":
        return
    _analyze(runtime, tables)


def _analyze(runtime: Runtime, tables: Sequence[str]) -> None:
    with runtime.engine.connect() as conn:
        # names from this module's constants, not input
        conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
        conn.commit()


#: Which of the tables (found as queries find them, by the search path) PostgreSQL has row estimates of.
_KNOWN_TABLES = text("SELECT relname FROM pg_class WHERE oid = ANY(CAST(:t AS regclass[])) AND reltuples > 0")


class _EarlyStatistics:
    """Analyse, once, the tables an import starts on while PostgreSQL has no statistics of them.

    Without statistics (a table never analysed, or analysed empty), the lookups by a list of keys
    (``column = ANY($1)``, prepared once per connection as a generic plan) were planned on the index's
    ``(workspace_id, kind)`` prefix alone, comparing each of the workspace's rows with every key, so each
    batch of the import paid for every row the batches before it wrote: the profiles of a fresh 10k-customer
    workspace imported at 2.2k/s on a durable cluster, the identity lookups 160–350 ms a batch. After one
    ``ANALYZE`` the planner scales its row estimates by the table's current size (density × pages), so this
    happens once: before the first batch that follows ``ANALYZE_AFTER`` written rows (an import of one batch
    has no later batch to help). :func:`refresh_statistics` still runs at the end.
    """

    def __init__(self, runtime: Runtime, tables: Sequence[str]) -> None:
        self.runtime = runtime
        self.unknown: tuple[str, ...] = ()
        if runtime.engine.dialect.name != "postgresql":
            return
        with runtime.engine.connect() as conn:
            known = set(conn.execute(_KNOWN_TABLES, {"t": list(tables)}).scalars())
        self.unknown = tuple(t for t in tables if t not in known)

    def before_batch(self, *, written: int) -> None:
        """Called before each batch with the rows the import has written so far."""
        if self.unknown and written >= ANALYZE_AFTER:
            _analyze(self.runtime, self.unknown)
            self.unknown = ()


def _resolve(
    db: Session,
    workspace_id: int,
    rules: ident.IdentityRules,
    touches: list[Touch],
    now: datetime,
    hooks: ProcessingHooks,
) -> Resolution:
    return resolve_batch(
        db, workspace_id=workspace_id, rules=rules, touches=touches, now=now, merge_hooks=hooks.on_merge
    )


def derive_message_id(row: Mapping[str, Any]) -> str:
    """Return a deterministic messageId for a row without one (the same row always gets the same id)."""
    canonical = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return "imp-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]


def _existing_message_ids(db: Session, workspace_id: int, ids: list[str]) -> set[str]:
    found: set[str] = set()
    if ids and db.get_bind().dialect.name == "postgresql":
        # One array parameter joined to the unique index. A 500-value IN list on a table whose statistics
        # lag behind a fresh import (autovacuum has not analysed it yet) is planned as a sequential scan
        # comparing every row with every value: half a second a batch at only 20k events.
        found.update(db.execute(_EXISTING_PG, {"ids": ids, "ws": workspace_id}).scalars())
        return found
    # One plain statement per 500 ids through the driver: the SQL expression's compile per call cost
    # more than the index probes themselves.
    conn = db.connection()
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        sql = _existing_sqlite(len(part))
        found.update(row[0] for row in conn.exec_driver_sql(sql, (workspace_id, *part)))
    return found


@functools.lru_cache(maxsize=8)
def _existing_sqlite(n: int) -> str:
    marks = ", ".join("?" * n)
    return f"SELECT message_id FROM events WHERE workspace_id = ? AND message_id IN ({marks})"  # noqa: S608


_EXISTING_PG = text(
    "SELECT e.message_id FROM unnest(CAST(:ids AS text[])) AS m(id) "
    "JOIN events e ON e.workspace_id = :ws AND e.message_id = m.id"
)


class _Linked:
    """An inserted event row as the batch's hooks read it (``BatchApplied.linked``): its id, its columns,
    and its JSON columns as objects, parsed on first use when the import's reader sent them as their stored
    text (a hook may read only some: the purchase events' properties, the consent statements in extra)."""

    __slots__ = ("_json", "channel", "event", "id", "profile_id", "source", "timestamp", "type")

    def __init__(self, row: dict[str, Any], event_id: int) -> None:
        self.id = event_id
        self.type = row["type"]
        self.event = row["event"]
        self.channel = row["channel"]
        self.timestamp = row["timestamp"]
        self.source = row["source"]
        self.profile_id = row["profile_id"]
        self._json = row

    def _parsed(self, name: str) -> Any:
        value = self._json[name]
        if value.__class__ is str:
            value = self._json[name] = {} if value == "{}" else fastjson.loads(value)
        return value

    @property
    def properties(self) -> Any:
        return self._parsed("properties")

    @property
    def context(self) -> Any:
        return self._parsed("context")

    @property
    def extra(self) -> Any:
        return self._parsed("extra")

    @property
    def traits(self) -> Any:
        return self._parsed("traits")


def prepare_events(
    batch: list[tuple[int, Mapping[str, Any]]], rules: ident.IdentityRules, now: datetime
) -> Prepared:
    """Validate a batch of Segment-spec messages (the tracking API's rules), drop in-batch duplicates and
    build each one's identity touch (pure; an alias's touch needs the database and is left None)."""
    out = Prepared(rows=len(batch))
    seen: set[str] = set()
    for number, message in batch:
        if not isinstance(message, Mapping):
            out.errors.append(RowError(number, "", "each row must be an object"))
            continue
        if PARSE_ERROR_KEY in message:
            out.errors.append(RowError(number, "", str(message[PARSE_ERROR_KEY])))
            continue
        message = dict(message)
        fast = message.pop(FAST_JSON_KEY, False) is True
        if _blank(message.get("messageId")):
            message["messageId"] = derive_message_id(message)
        result = norm.normalize(
            message, received_at=now, source="import", may_grant_consent=False, fast_json=fast
        )
        if isinstance(result, norm.Rejected):
            first = result.errors[0]
            out.errors.append(RowError(number, first.field, first.reason))
            continue
        row = result.row
        if row["message_id"] in seen:
            out.duplicates += 1
            continue
        seen.add(row["message_id"])
        out.numbers.append(number)
        out.events.append(row)
        kind = row["type"]
        out.touches.append(
            None
            if kind == "alias"
            else touch_of(
                kind,
                row["user_id"],
                row["anonymous_id"],
                row["traits"],
                row["context"],
                row["timestamp"],
                rules,
            )
        )
    return out


def import_event_rows(
    runtime: Runtime,
    *,
    workspace_id: int,
    rows: Iterable[Mapping[str, Any]],
    progress: Progress | None = None,
    on_error: Callable[[RowError], None] | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> ImportReport:
    """Append Segment-spec messages (type, event, userId, anonymousId, messageId, timestamp, properties,
    context, traits) to the event log, resolving their profiles in bulk; duplicates are skipped."""
    rules = load_rules(runtime, workspace_id)
    prepared = (prepare_events(b, rules, runtime.clock.now()) for b in batches(rows, batch_size))
    return apply_events(
        runtime, workspace_id=workspace_id, prepared=prepared, progress=progress, on_error=on_error
    )


def apply_events(
    runtime: Runtime,
    *,
    workspace_id: int,
    prepared: Iterable[Prepared],
    progress: Progress | None = None,
    on_error: Callable[[RowError], None] | None = None,
) -> ImportReport:
    """Write prepared event batches, one transaction each: skip known messageIds, resolve profiles,
    append the events as already processed, run the hooks, commit."""
    report = ImportReport(kind="events")
    started = time.perf_counter()
    hooks = hooks_for(runtime)
    statistics = _EarlyStatistics(runtime, _EVENT_TABLES)
    with bulk_gc():
        for batch in prepared:
            statistics.before_batch(written=report.imported)
            for error in batch.errors:
                report.add_error(error, on_error)
            report.duplicates += batch.duplicates
            now = runtime.clock.now()
            valid = list(zip(batch.numbers, batch.events, batch.touches, strict=True))
            with runtime.sessions() as db:
                lock_workspace(db, workspace_id, wait=True)
                existing = _existing_message_ids(db, workspace_id, [r["message_id"] for _, r, _ in valid])
                if existing:
                    report.duplicates += sum(1 for _, r, _ in valid if r["message_id"] in existing)
                    valid = [v for v in valid if v[1]["message_id"] not in existing]
                settings, rules = settings_and_rules(db, workspace_id)
                if any(t is None for _, _, t in valid):  # an alias: its previousId's kind needs the batch
                    kinds = alias_kinds(db, workspace_id, [_RowView(r) for _, r, _ in valid])
                    touches = [t or touch_for_event(_RowView(r), rules, kinds) for _, r, t in valid]
                else:
                    touches = [cast(Touch, t) for _, _, t in valid]
                outcome = _resolve(db, workspace_id, rules, touches, now, hooks)
                out: list[dict[str, Any]] = []
                for (number, row, _), pid, suppressed in zip(
                    valid, outcome.profile_ids, outcome.suppressed, strict=True
                ):
                    if suppressed:
                        report.suppressed += 1
                        report.add_error(RowError(number, "", "identifier was erased (suppressed)"), on_error)
                        continue
                    row["workspace_id"] = workspace_id
                    row["profile_id"] = pid
                    row["state"] = PROCESSED
                    out.append(row)
                # every column: the normaliser's row with the three set above
                ids = ingest.append_events_returning(db, out)
                report.imported += len(ids)
                report.duplicates += len(out) - len(ids)  # stored by another writer since the check
                report.created += outcome.created
                report.merges += len(outcome.merges)
                if (hooks.after_apply or hooks.before_write) and ids:
                    # The hooks (consent statements, computed traits, time zones, …) get the rows inserted
                    # (a row another writer stored first is not this import's) and, without a merge, the
                    # profiles as the resolution left them.
                    inserted = sorted(
                        (
                            (_Linked(r, ids[r["message_id"]]), r["profile_id"])
                            for r in out
                            if r["message_id"] in ids
                        ),
                        key=lambda pair: pair[0].id,
                    )
                    _after_apply(
                        runtime,
                        db,
                        workspace_id,
                        [row.id for row, _pid in inserted],
                        outcome.touched,
                        outcome.changed_traits,
                        outcome,
                        event_names=frozenset(row.event for row, _pid in inserted),
                        # as the processor hands them: linked events only (no identifier: no profile)
                        linked=[(r, p) for r, p in inserted if p is not None],
                        settings=settings,
                    )
                db.commit()
            report.rows += batch.rows
            if progress is not None:
                progress(report.rows)
    refresh_statistics(runtime, _EVENT_TABLES, changed=report.imported)
    report.seconds = time.perf_counter() - started
    return report


def _after_apply(
    runtime: Runtime,
    db: Session,
    workspace_id: int,
    event_ids: list[int],
    profile_ids: set[int],
    changed: dict[int, set[str]],
    outcome: Any,
    event_names: frozenset[str | None] = frozenset(),
    linked: list[tuple[Any, int]] | None = None,
    settings: dict[str, Any] | None = None,
) -> None:
    hooks = hooks_for(runtime)
    if not hooks.after_apply and not hooks.before_write:
        return
    batch = BatchApplied(
        db=db,
        runtime=runtime,
        workspace_id=workspace_id,
        event_ids=event_ids,
        profile_ids=profile_ids,
        changed_traits=changed,
        merges=outcome.merges,
        source="import",
        event_names=event_names,
        linked=linked,
        workspace_settings=settings,
        profile_facts=None if outcome.merges else outcome.facts,
    )
    run_hooks(hooks, batch)
