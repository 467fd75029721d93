"""HTTP routes under /api/v1/segments: CRUD, preview, members (JSON or formula-safe CSV)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from rapport.accounts.principal import Principal
from rapport.api.deps import DbSession, Offset, ReadDbSession, get_runtime, require_scope
from rapport.kit.pagination import Page
from rapport.runtime import Runtime
from rapport.segments import service
from rapport.segments.schemas import (
    PreviewRead,
    ProfileSample,
    SegmentCreate,
    SegmentInput,
    SegmentRead,
    SegmentUpdate,
)

router = APIRouter(prefix="/api/v1/segments", tags=["segments"])

Reader = Annotated[Principal, Depends(require_scope("segments:read"))]
Writer = Annotated[Principal, Depends(require_scope("segments:write"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class DuplicateBody(BaseModel):
    """The name of the copy (default: "<name> (copy)")."""

    name: str | None = Field(default=None, min_length=1, max_length=200)


@router.get("", response_model=list[SegmentRead])
def list_segments(principal: Reader, db: ReadDbSession, include_archived: bool = False) -> object:
    """List the workspace's segments by name."""
    return service.list_segments(db, workspace_id=principal.workspace_id, include_archived=include_archived)


@router.post("", response_model=SegmentRead, status_code=201)
def create_segment(body: SegmentCreate, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
    """Save a segment (text or ast) and materialise its members; 400 with line/column when it is invalid."""
    now = runtime.clock.now()
    segment = service.create_segment(
        db, workspace_id=principal.workspace_id, data=body, actor=principal.actor, now=now, materialise=False
    )
    db.commit()
    # the members are computed after the commit, off SQLite's write lock (short write transactions)
    return service.do_materialise(
        runtime, workspace_id=principal.workspace_id, segment_id=segment.id, now=now
    )


@router.post("/preview", response_model=PreviewRead)
def preview_segment(body: SegmentInput, principal: Reader, db: ReadDbSession, runtime: RuntimeDep) -> object:
    """Count the profiles a definition matches now and return the first 20."""
    return service.preview(
        db, workspace_id=principal.workspace_id, text=body.text, ast=body.ast, now=runtime.clock.now()
    )


@router.get("/{segment_id}", response_model=SegmentRead)
def read_segment(segment_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one segment."""
    return service.get_segment(db, workspace_id=principal.workspace_id, segment_id=segment_id)


@router.patch("/{segment_id}", response_model=SegmentRead)
def update_segment(
    segment_id: int, body: SegmentUpdate, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    """Rename, redescribe or redefine a segment."""
    now = runtime.clock.now()
    segment = service.update_segment(
        db, workspace_id=principal.workspace_id, segment_id=segment_id, data=body, now=now, materialise=False
    )
    building = segment.status == "building"
    db.commit()
    if not building:
        return segment
    return service.do_materialise(
        runtime, workspace_id=principal.workspace_id, segment_id=segment_id, now=now
    )


@router.delete("/{segment_id}", response_model=SegmentRead)
def archive_segment(segment_id: int, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
    """Archive a segment (409 while another segment names it)."""
    segment = service.archive_segment(
        db, workspace_id=principal.workspace_id, segment_id=segment_id, now=runtime.clock.now()
    )
    db.commit()
    return segment


@router.post("/{segment_id}/duplicate", response_model=SegmentRead, status_code=201)
def duplicate_segment(
    segment_id: int, body: DuplicateBody, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    """Save a copy of a segment under a new name."""
    now = runtime.clock.now()
    segment = service.duplicate_segment(
        db,
        workspace_id=principal.workspace_id,
        segment_id=segment_id,
        name=body.name,
        actor=principal.actor,
        now=now,
        materialise=False,
    )
    db.commit()
    return service.do_materialise(
        runtime, workspace_id=principal.workspace_id, segment_id=segment.id, now=now
    )


@router.get("/{segment_id}/members", response_model=list[ProfileSample])
def segment_members(
    segment_id: int,
    principal: Reader,
    db: ReadDbSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
    format: Literal["json", "csv"] = "json",
) -> object:
    """List a segment's members (paginated), or export them all as formula-safe CSV with ``format=csv``."""
    if format == "csv":
        lines = list(service.export_csv(db, workspace_id=principal.workspace_id, segment_id=segment_id))
        return StreamingResponse(
            iter(lines),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="segment-{segment_id}.csv"'},
        )
    return service.list_members(
        db, workspace_id=principal.workspace_id, segment_id=segment_id, page=Page(limit=limit, offset=offset)
    )
