"""Segments as a service: validate, preview, create/update/archive/duplicate, members and CSV export.

Services flush, the edge commits. A saved segment keeps its AST (versioned JSON), its canonical text, a bucket
seed (its id) and materialised members with ``entered_at``; creating or editing one sets the baseline
membership (no entry events), after which ``rapport.segments.realtime`` keeps it current and reports entries
and exits.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from rapport.errors import Conflict, NotFound, ValidationFailed
from rapport.kit.pagination import Page
from rapport.models import Segment
from rapport.runtime import Runtime
from rapport.segments import catalog_service, realtime, repository
from rapport.segments.ast import Node
from rapport.segments.catalog import Catalog, check
from rapport.segments.codec import from_json, to_json
from rapport.segments.dependencies import check_cycles, dependencies, referenced_segments
from rapport.segments.parser import parse
from rapport.segments.printer import to_text
from rapport.segments.schemas import PreviewRead, ProfileSample, SegmentCreate, SegmentUpdate

SAMPLE_SIZE = 20
#: Cells starting with these are read as formulas by spreadsheets (R25).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def parse_definition(*, text: str | None, ast: dict[str, Any] | None, catalog: Catalog) -> Node:
    """Return the tree of a definition given as text or JSON, checked against ``catalog``.

    Errors are ``SegmentError`` with line and column (text) or a JSON path (ast).
    """
    if (text is None) == (ast is None):
        raise ValidationFailed("give the segment as either text or ast", code="invalid_segment")
    if text is not None:
        return parse(text, catalog=catalog)
    tree = from_json(ast)
    check(tree, catalog)
    return tree


def get_segment(db: Session, *, workspace_id: int, segment_id: int) -> Segment:
    """Return one segment of the workspace or raise NotFound."""
    segment = repository.get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    if segment is None:
        raise NotFound(f"no segment {segment_id}")
    return segment


def list_segments(db: Session, *, workspace_id: int, include_archived: bool = False) -> list[Segment]:
    """Return the workspace's segments by name."""
    return repository.list_segments(db, workspace_id=workspace_id, include_archived=include_archived)


def preview(
    db: Session, *, workspace_id: int, text: str | None, ast: dict[str, Any] | None, now: datetime
) -> PreviewRead:
    """Count the profiles a definition matches now and show the first 20."""
    catalog = catalog_service.build_catalog(db, workspace_id=workspace_id)
    tree = parse_definition(text=text, ast=ast, catalog=catalog)
    started = time.perf_counter()
    scope = realtime.scope_for(db, workspace_id=workspace_id, now=now, catalog=catalog, seed="preview")
    count, rows = repository.count_and_sample(db, tree, scope, limit=SAMPLE_SIZE)
    return PreviewRead(
        text=to_text(tree, catalog=catalog),
        ast=to_json(tree),
        count=count,
        sample=[ProfileSample(id=r.id, email=r.email, phone=r.phone, name=r.name) for r in rows],
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _check_cycles(db: Session, *, workspace_id: int, name: str, tree: Node) -> None:
    def resolve(other: str) -> Node | None:
        if other == name:
            return tree
        found = repository.get_by_name(db, workspace_id=workspace_id, name=other)
        return from_json(found.ast) if found is not None else None

    check_cycles(name, tree, resolve)


def _name_free(db: Session, *, workspace_id: int, name: str, segment_id: int | None = None) -> None:
    existing = repository.get_by_name(db, workspace_id=workspace_id, name=name)
    if existing is not None and existing.id != segment_id:
        raise Conflict(f"a segment called {name!r} exists", code="segment_name_taken")


def _store(db: Session, segment: Segment, tree: Node, catalog: Catalog) -> None:
    segment.ast = to_json(tree)
    segment.text = to_text(tree, catalog=catalog)
    deps = dependencies(tree)
    # a windowed computed trait (orders in the last 30 days) moves with time like a rolling window
    windowed = realtime.windowed_names(db, workspace_id=segment.workspace_id)
    segment.by_time = deps.by_time or bool(deps.fields & windowed)


def _baseline(db: Session, segment: Segment, now: datetime) -> None:
    """Materialise a new or changed definition's members without entry events."""
    db.flush()
    scope = realtime.scope_for(db, workspace_id=segment.workspace_id, now=now)
    realtime.reconcile(db, segment, scope, emit=False)


def create_segment(
    db: Session,
    *,
    workspace_id: int,
    data: SegmentCreate,
    actor: str,
    now: datetime,
    materialise: bool = True,
) -> Segment:
    """Validate and save a segment, then materialise its members.

    ``materialise=False`` saves it as ``building`` instead: the caller commits, then runs
    ``do_materialise(runtime, …)``, which computes the members outside the write transaction (what the API
    does; a big workspace would otherwise hold SQLite's write lock for the whole query).
    """
    name = data.name.strip()
    _name_free(db, workspace_id=workspace_id, name=name)
    catalog = catalog_service.build_catalog(db, workspace_id=workspace_id)
    tree = parse_definition(text=data.text, ast=data.ast, catalog=catalog)
    _check_cycles(db, workspace_id=workspace_id, name=name, tree=tree)
    segment = Segment(
        workspace_id=workspace_id,
        name=name,
        description=data.description,
        version=1,
        status="active",
        created_by=actor[:100],
        created_at=now,
        updated_at=now,
    )
    _store(db, segment, tree, catalog)
    db.add(segment)
    db.flush()
    segment.seed = str(segment.id)
    if materialise:
        _baseline(db, segment, now)
    else:
        segment.status = realtime.BUILDING
    return segment


def update_segment(
    db: Session,
    *,
    workspace_id: int,
    segment_id: int,
    data: SegmentUpdate,
    now: datetime,
    materialise: bool = True,
) -> Segment:
    """Rename, redescribe or redefine a segment; a new definition bumps the version and the baseline.

    ``materialise=False``: as for ``create_segment``, a new definition leaves the segment ``building`` for
    ``do_materialise`` after the commit.
    """
    segment = get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    if segment.archived_at is not None:
        raise Conflict("an archived segment cannot change", code="segment_archived")
    if data.name is not None and data.name.strip() != segment.name:
        new_name = data.name.strip()
        _name_free(db, workspace_id=workspace_id, name=new_name, segment_id=segment.id)
        users = _users_of(db, workspace_id=workspace_id, name=segment.name)
        if users:
            raise Conflict(f"segments {', '.join(sorted(users))} name this one; rename it there first")
        segment.name = new_name
    if data.description is not None:
        segment.description = data.description
    if data.text is not None or data.ast is not None:
        catalog = catalog_service.build_catalog(db, workspace_id=workspace_id)
        tree = parse_definition(text=data.text, ast=data.ast, catalog=catalog)
        _check_cycles(db, workspace_id=workspace_id, name=segment.name, tree=tree)
        if to_json(tree) != segment.ast:
            _store(db, segment, tree, catalog)
            segment.version += 1
            if materialise:
                _baseline(db, segment, now)
            else:
                segment.status = realtime.BUILDING
    segment.updated_at = now
    db.flush()
    return segment


def do_materialise(runtime: Runtime, *, workspace_id: int, segment_id: int, now: datetime) -> Segment:
    """Build a saved segment's members off the write lock (read, then short write transactions); return it.

    Commits on its own sessions: call it after the transaction that saved the segment has committed.
    """
    realtime.materialise(runtime, workspace_id=workspace_id, segment_id=segment_id, at=now)
    with runtime.read_sessions() as db:
        segment = get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
        db.expunge(segment)
        return segment


def _users_of(db: Session, *, workspace_id: int, name: str) -> set[str]:
    return {
        other.name
        for other in repository.list_segments(db, workspace_id=workspace_id)
        if other.name != name and name in referenced_segments(from_json(other.ast))
    }


def archive_segment(db: Session, *, workspace_id: int, segment_id: int, now: datetime) -> Segment:
    """Archive a segment (it keeps its history but stops refreshing); refused while others name it."""
    segment = get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    if segment.archived_at is not None:
        return segment
    users = _users_of(db, workspace_id=workspace_id, name=segment.name)
    if users:
        raise Conflict(f"segments {', '.join(sorted(users))} use this segment", code="segment_in_use")
    segment.archived_at = now
    segment.status = "archived"
    segment.updated_at = now
    db.flush()
    return segment


def duplicate_segment(
    db: Session,
    *,
    workspace_id: int,
    segment_id: int,
    name: str | None,
    actor: str,
    now: datetime,
    materialise: bool = True,
) -> Segment:
    """Save a copy of a segment under a new name (default: "<name> (copy)")."""
    source = get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    new_name = name or f"{source.name} (copy)"
    data = SegmentCreate(name=new_name, description=source.description, ast=source.ast)
    return create_segment(
        db, workspace_id=workspace_id, data=data, actor=actor, now=now, materialise=materialise
    )


def list_members(db: Session, *, workspace_id: int, segment_id: int, page: Page) -> list[ProfileSample]:
    """Return one page of a segment's members, by profile id."""
    get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    rows = repository.list_members(db, segment_id=segment_id, limit=page.limit, offset=page.offset)
    return [
        ProfileSample(id=r.id, email=r.email, phone=r.phone, name=r.name, entered_at=r.entered_at)
        for r in rows
    ]


def safe_cell(value: object) -> str:
    """Render a CSV cell that spreadsheets will not run as a formula (R25): a leading ' when needed."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_csv(db: Session, *, workspace_id: int, segment_id: int) -> Iterator[str]:
    """Yield a segment's members as CSV lines (header first), formula-safe."""
    get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells: list[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([safe_cell(cell) for cell in cells])
        return buffer.getvalue()

    yield line(["profile_id", "email", "phone", "name", "entered_at"])
    for row in repository.iter_members(db, segment_id=segment_id):
        yield line([row.id, row.email, row.phone, row.name, row.entered_at.isoformat()])
