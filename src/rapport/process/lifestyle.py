"""Lifestyle (geodemographic) overlay: reference tables keyed by postcode prefix, matched longest-first.

A table is a CSV: the first column (or one named ``key``/``postcode``) is the key — a postcode, sector,
district or area such as ``LS1 4``, ``LS1`` or ``LS`` — and every other column is copied onto matching
profiles as ``Profile.computed["lifestyle"][<column>]`` (``lifestyle.<column>`` in segments and templates).
Keys and postcodes are normalised (upper case, letters and digits only), and a profile takes the row whose
key is the **longest prefix** of its postcode: ``LS14AP`` matches ``LS14`` before ``LS1`` before ``LS``.
With several active tables, each contributes its columns; on a clash the newer table wins. Values are
re-applied when a profile's postcode changes (after-apply hook) and for every profile on upload.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from rapport.collect.processor import BatchApplied
from rapport.errors import NotFound, ValidationFailed
from rapport.models import LifestyleRow, LifestyleTable, Profile
from rapport.process import repository
from rapport.runtime import Runtime
from rapport.worker import queue

KEY = "lifestyle"
APPLY_JOB = "process.lifestyle"
POSTCODE_TRAITS: tuple[str, ...] = ("postcode", "postal_code", "postalCode", "zip")
MAX_ROWS = 500_000
MAX_COLUMNS = 50

Lookup = dict[str, dict[str, Any]]


def normalise(value: Any) -> str:
    """Upper-case letters and digits only (``"ls1 4ap"`` → ``"LS14AP"``)."""
    return "".join(ch for ch in str(value).upper() if ch.isalnum())


def postcode_of(traits: Mapping[str, Any]) -> str | None:
    """Return the normalised postcode among a profile's traits (also ``address.postal_code``)."""
    for name in POSTCODE_TRAITS:
        value = traits.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and normalise(value):
            return normalise(value)
    address = traits.get("address")
    if isinstance(address, Mapping):
        return postcode_of({k: v for k, v in address.items() if k != "address"})
    return None


def match(lookup: Mapping[str, Mapping[str, Any]], postcode: str | None) -> Mapping[str, Any] | None:
    """Return the row of the longest key that is a prefix of ``postcode``."""
    if not postcode:
        return None
    for end in range(len(postcode), 0, -1):
        row = lookup.get(postcode[:end])
        if row is not None:
            return row
    return None


def parse_csv(data: bytes | str) -> tuple[list[str], Lookup]:
    """Parse an uploaded table: (value columns, {normalised key: {column: value}}); numbers stay numbers."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError:  # e.g. a spreadsheet saved as Windows-1252, or an .xlsx file
        raise ValidationFailed(
            "the table is not UTF-8 text: save it as CSV UTF-8 and upload it again", code="bad_encoding"
        ) from None
    reader = csv.reader(io.StringIO(text))
    try:
        return _read_table(reader)
    except csv.Error as exc:  # e.g. a cell past the csv module's 128 KB field limit, a stray NUL
        raise ValidationFailed(
            f"the table is not valid CSV near line {reader.line_num}: {exc}", code="bad_csv"
        ) from None


def _read_table(reader: Iterator[list[str]]) -> tuple[list[str], Lookup]:
    header = next(reader, None)
    if not header or len(header) < 2:
        raise ValidationFailed("the table needs a header with a key column and at least one value column")
    header = [h.strip() for h in header]
    lowered = [h.lower() for h in header]
    key_at = next((i for i, h in enumerate(lowered) if h in ("key", "postcode")), 0)
    columns = [h for i, h in enumerate(header) if i != key_at]
    if len(columns) > MAX_COLUMNS or any(not c for c in columns) or len(set(columns)) != len(columns):
        raise ValidationFailed(f"value columns must be named, distinct and at most {MAX_COLUMNS}")
    rows: Lookup = {}
    for number, record in enumerate(reader, start=2):
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            raise ValidationFailed(f"line {number}: expected {len(header)} cells, got {len(record)}")
        key = normalise(record[key_at])
        if not key or len(key) > 20:
            raise ValidationFailed(f"line {number}: the key must be 1-20 letters or digits")
        values = [cell for i, cell in enumerate(record) if i != key_at]
        rows[key] = {c: _typed(v) for c, v in zip(columns, values, strict=True)}
        if len(rows) > MAX_ROWS:
            raise ValidationFailed(f"at most {MAX_ROWS} rows")
    if not rows:
        raise ValidationFailed("the table has no rows")
    return columns, rows


def _typed(cell: str) -> Any:
    value = cell.strip()
    if value == "":
        return None
    try:
        return int(value) if value.lstrip("-").isdigit() else float(value) if _floaty(value) else value
    except ValueError:
        return value


def _floaty(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")


def save_table(
    db: Session, *, workspace_id: int, name: str, data: bytes | str, now: datetime, enqueue: bool = True
) -> LifestyleTable:
    """Create or replace the named table from CSV and (unless the caller applies it) enqueue applying it."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed("name must be 1-100 characters")
    columns, rows = parse_csv(data)
    table = db.scalar(
        select(LifestyleTable).where(LifestyleTable.workspace_id == workspace_id, LifestyleTable.name == name)
    )
    if table is None:
        table = LifestyleTable(workspace_id=workspace_id, name=name, created_at=now)
        db.add(table)
    table.columns = columns
    table.row_count = len(rows)
    table.active = True
    table.updated_at = now
    db.flush()
    db.execute(delete(LifestyleRow).where(LifestyleRow.table_id == table.id))
    items = [{"table_id": table.id, "key": k, "values": v} for k, v in rows.items()]
    for i in range(0, len(items), 5000):
        db.execute(insert(LifestyleRow), items[i : i + 5000])
    if not enqueue:
        return table
    queue.enqueue(
        db,
        kind=APPLY_JOB,
        workspace_id=workspace_id,
        payload={"table_id": table.id},
        dedupe_key=f"{APPLY_JOB}:{workspace_id}:{table.id}:{now.isoformat()}",
        max_attempts=3,
        now=now,
    )
    return table


def list_tables(db: Session, *, workspace_id: int) -> list[LifestyleTable]:
    """Return the workspace's tables by name."""
    return list(
        db.scalars(
            select(LifestyleTable)
            .where(LifestyleTable.workspace_id == workspace_id)
            .order_by(LifestyleTable.name)
        )
    )


def get_table(db: Session, *, workspace_id: int, table_id: int) -> LifestyleTable:
    """Return one table of the workspace; NotFound otherwise."""
    table = db.scalar(
        select(LifestyleTable).where(
            LifestyleTable.id == table_id, LifestyleTable.workspace_id == workspace_id
        )
    )
    if table is None:
        raise NotFound("no such lifestyle table")
    return table


def delete_table(db: Session, *, workspace_id: int, table_id: int, now: datetime) -> None:
    """Delete a table and enqueue re-applying the remaining ones."""
    table = get_table(db, workspace_id=workspace_id, table_id=table_id)
    db.delete(table)
    db.flush()
    queue.enqueue(
        db,
        kind=APPLY_JOB,
        workspace_id=workspace_id,
        payload={"table_id": table_id},
        dedupe_key=f"{APPLY_JOB}:{workspace_id}:{table_id}:deleted",
        now=now,
    )


class Overlay:
    """The workspace's active tables, loaded once, answering by longest prefix."""

    def __init__(self, tables: Sequence[Lookup]) -> None:
        self.tables = tables

    @staticmethod
    def load(db: Session, workspace_id: int) -> Overlay:
        """Load every active table of the workspace (oldest first, so newer ones win on a clash)."""
        ids = list(
            db.scalars(
                select(LifestyleTable.id)
                .where(LifestyleTable.workspace_id == workspace_id, LifestyleTable.active.is_(True))
                .order_by(LifestyleTable.id)
            )
        )
        tables: list[Lookup] = []
        for table_id in ids:
            rows = db.execute(
                select(LifestyleRow.key, LifestyleRow.values).where(LifestyleRow.table_id == table_id)
            )
            tables.append({k: dict(v or {}) for k, v in rows})
        return Overlay(tables)

    @staticmethod
    def for_postcodes(db: Session, workspace_id: int, postcodes: Iterable[str | None]) -> Overlay:
        """Load only the rows whose key is a prefix of one of ``postcodes`` (what a small batch needs)."""
        prefixes = sorted({p[:end] for p in postcodes if p for end in range(1, min(len(p), 20) + 1)})
        tables: dict[int, Lookup] = {}
        ids = list(
            db.scalars(
                select(LifestyleTable.id)
                .where(LifestyleTable.workspace_id == workspace_id, LifestyleTable.active.is_(True))
                .order_by(LifestyleTable.id)
            )
        )
        for table_id in ids:
            tables[table_id] = {}
        for i in range(0, len(prefixes), 500):
            rows = db.execute(
                select(LifestyleRow.table_id, LifestyleRow.key, LifestyleRow.values).where(
                    LifestyleRow.table_id.in_(ids), LifestyleRow.key.in_(prefixes[i : i + 500])
                )
            )
            for table_id, key, values in rows:
                tables[table_id][key] = dict(values or {})
        return Overlay([tables[t] for t in ids])

    def values_for(self, postcode: str | None) -> dict[str, Any]:
        """Return the merged columns matching ``postcode`` (empty when none)."""
        out: dict[str, Any] = {}
        for lookup in self.tables:
            row = match(lookup, postcode)
            if row:
                out.update(row)
        return out


def _apply(db: Session, workspace_id: int, overlay: Overlay, profiles: Iterable[tuple[int, Any]]) -> int:
    patches: dict[int, dict[str, Any]] = {}
    clear: dict[int, dict[str, Any]] = {}
    for pid, traits in profiles:
        values = overlay.values_for(postcode_of(traits if isinstance(traits, Mapping) else {}))
        if values:
            patches[pid] = {KEY: values}
        else:
            clear[pid] = {}
    repository.patch_computed(db, workspace_id, patches)
    repository.patch_computed(db, workspace_id, clear, remove=[KEY])
    return len(patches)


def apply_to_profiles(
    db: Session, *, workspace_id: int, profile_ids: Sequence[int], overlay: Overlay | None = None
) -> int:
    """Re-apply the overlay to some profiles in the caller's transaction; returns how many matched."""
    overlay = overlay or Overlay.load(db, workspace_id)
    rows: list[Any] = []
    ids = sorted(profile_ids)
    for i in range(0, len(ids), 500):
        rows.extend(
            db.execute(
                select(Profile.id, Profile.traits).where(
                    Profile.workspace_id == workspace_id, Profile.id.in_(ids[i : i + 500])
                )
            ).all()
        )
    return _apply(db, workspace_id, overlay, [(r.id, r.traits) for r in rows])


def apply_all(runtime: Runtime, workspace_id: int, progress: Callable[[int], None] | None = None) -> int:
    """Re-apply the overlay to every profile of the workspace, one transaction per batch; returns matches."""
    with runtime.read_sessions() as db:
        overlay = Overlay.load(db, workspace_id)
        batches = list(repository.profile_id_batches(db, workspace_id, size=2000))
    matched = done = 0
    for ids in batches:
        with runtime.sessions() as db:
            matched += apply_to_profiles(db, workspace_id=workspace_id, profile_ids=ids, overlay=overlay)
            db.commit()
        done += len(ids)
        if progress is not None:
            progress(done)
    return matched


def apply_batch(batch: BatchApplied) -> None:
    """After-apply hook: re-apply the overlay to profiles whose postcode changed in this batch."""
    changed = [pid for pid, names in batch.changed_traits.items() if names & {*POSTCODE_TRAITS, "address"}]
    if not changed:
        return
    db, ws = batch.db, batch.workspace_id
    rows: list[Any] = []
    for i in range(0, len(changed), 500):
        rows.extend(
            db.execute(
                select(Profile.id, Profile.traits).where(
                    Profile.workspace_id == ws, Profile.id.in_(changed[i : i + 500])
                )
            ).all()
        )
    profiles = [(r.id, r.traits if isinstance(r.traits, Mapping) else {}) for r in rows]
    overlay = Overlay.for_postcodes(db, ws, (postcode_of(t) for _, t in profiles))
    if not overlay.tables:
        return
    _apply(db, ws, overlay, profiles)


def load_sample(runtime: Runtime, workspace_id: int, *, name: str = "sample") -> int:
    """Load the shipped sample table (rapport/data/lifestyle_sample.csv) and apply it; returns matches."""
    from importlib import resources

    data = resources.files("rapport.data").joinpath("lifestyle_sample.csv").read_bytes()
    with runtime.sessions() as db:
        save_table(
            db, workspace_id=workspace_id, name=name, data=data, now=runtime.clock.now(), enqueue=False
        )
        db.commit()
    return apply_all(runtime, workspace_id)
