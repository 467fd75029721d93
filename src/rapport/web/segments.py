"""Segments pages: the list with live sizes, the builder (visual editor and text side by side, live count and
sample), save / duplicate / archive, and the members list with its CSV export.

The builder's JavaScript (``static/js/segment-builder.js``) posts the definition — as the JSON AST from the
visual editor or as text — to ``POST /segments/builder/preview`` and gets back the canonical text, the AST,
the count and a 20-profile sample, or the error with its line, column, JSON path and suggestion.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from rapport.api.deps import DbSession, ReadDbSession
from rapport.errors import RapportError
from rapport.kit.pagination import Page
from rapport.models import Segment
from rapport.runtime import Runtime
from rapport.segments import SegmentError, catalog_service
from rapport.segments import service as segments_service
from rapport.segments.schemas import SegmentCreate, SegmentUpdate
from rapport.web.form_limits import Limit, too_long
from rapport.web.rendering import SECURITY_HEADERS, Flash, redirect, render
from rapport.web.segments_builder import (
    RECENT_DAYS,
    Movement,
    catalog_for_browser,
    error_payload,
    locate_in_document,
    recent_movements,
)
from rapport.web.session import UiEditorPost, UiPage, UiPost, UiRoute, UiUser

router = APIRouter(prefix="/segments", route_class=UiRoute, include_in_schema=False)

MEMBERS_PAGE_SIZE = 50
MAX_TEXT = 20_000


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get("")
def segments_list(
    request: Request, ui: UiPage, db: ReadDbSession, archived: bool = False, partial: bool = False
) -> Response:
    """List the workspace's segments with their member counts and recent entries and exits."""
    segments = segments_service.list_segments(db, workspace_id=ui.workspace_id, include_archived=archived)
    moves = recent_movements(db, workspace_id=ui.workspace_id, now=_runtime(request).clock.now())
    context = {
        "title": "Segments",
        "segments": segments,
        "moves": moves,
        "no_moves": Movement(),
        "archived": archived,
        "recent_days": RECENT_DAYS,
    }
    if partial and request.headers.get("hx-request") == "true":
        return render(request, "segments/_rows.html", context)
    return render(request, "segments/list.html", context)


def _builder(
    request: Request,
    ui: UiUser,
    db: Session,
    *,
    segment: Segment | None,
    name: str = "",
    description: str = "",
    text: str = "",
    ast: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    problem: str = "",
) -> Response:
    catalog = catalog_service.build_catalog(db, workspace_id=ui.workspace_id)
    title = segment.name if segment is not None else "New segment"
    return render(
        request,
        "segments/builder.html",
        {
            "title": title,
            "segment": segment,
            "name": name,
            "description": description,
            "text": text,
            "builder": {"catalog": catalog_for_browser(catalog), "ast": ast},
            "error": error,
            "problem": problem,
            "action": f"/segments/{segment.id}" if segment is not None else "/segments/new",
            "read_only": not ui.can_edit or (segment is not None and segment.archived_at is not None),
        },
    )


@router.get("/new")
def segment_new(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """Open an empty builder."""
    return _builder(request, ui, db, segment=None)


@router.post("/builder/preview")
def builder_preview(
    request: Request,
    ui: UiPost,
    db: ReadDbSession,
    source: Annotated[str, Form()] = "text",
    text: Annotated[str, Form()] = "",
    ast: Annotated[str, Form()] = "",
) -> JSONResponse:
    """Answer the builder: canonical text, AST, count and sample, or the error placed where it is."""
    if not (text if source == "text" else ast).strip():
        return _json({"ok": True, "empty": True, "text": "", "ast": None, "count": None, "sample": []})
    if len(text) > MAX_TEXT:
        error = SegmentError(f"a segment's text is at most {MAX_TEXT} characters")
        return _json({"ok": False, "source": source, "error": error_payload(error)})
    document: Any = None
    if source == "ast":
        try:
            document = json.loads(ast)
        except ValueError:
            return _json({"ok": False, "source": source, "error": error_payload(SegmentError("not JSON"))})
    try:
        found = segments_service.preview(
            db,
            workspace_id=ui.workspace_id,
            text=text if source == "text" else None,
            ast=document if source == "ast" else None,
            now=_runtime(request).clock.now(),
        )
    except SegmentError as exc:
        path = exc.path
        if source == "ast" and path is None:
            catalog = catalog_service.build_catalog(db, workspace_id=ui.workspace_id)
            path = locate_in_document(document, catalog)
        return _json({"ok": False, "source": source, "error": error_payload(exc, path=path)})
    return _json(
        {
            "ok": True,
            "empty": False,
            "source": source,
            "text": found.text,
            "ast": found.ast,
            "count": found.count,
            "sample": [item.model_dump(mode="json", exclude={"entered_at"}) for item in found.sample],
            "elapsed_ms": found.elapsed_ms,
        }
    )


def _json(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers=dict(SECURITY_HEADERS))


#: The builder form's fields, what the page calls them, and their longest allowed length.
_LIMITS: tuple[Limit, ...] = (
    ("name", "The name", 200),
    ("description", "The description", 2000),
    ("text", "The text", MAX_TEXT),
)


def _save_problem(exc: RapportError) -> tuple[dict[str, Any] | None, str]:
    if isinstance(exc, SegmentError):
        return error_payload(exc), ""
    return None, exc.message


@router.post("/new")
def segment_create(
    request: Request,
    ui: UiEditorPost,
    db: DbSession,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
) -> Response:
    """Save a new segment from the builder's text form (kept in sync with the visual editor)."""
    form: dict[str, Any] = {"name": name, "description": description, "text": text}
    if problem := too_long(form, _LIMITS):
        return _builder(request, ui, db, segment=None, **form, problem=problem)
    if not name.strip():
        return _builder(request, ui, db, segment=None, **form, problem="Give the segment a name.")
    if not text.strip():
        return _builder(request, ui, db, segment=None, **form, problem="Add at least one condition.")
    try:
        segment = segments_service.create_segment(
            db,
            workspace_id=ui.workspace_id,
            data=SegmentCreate(name=name, description=description, text=text),
            actor=f"user:{ui.user_id}",
            now=_runtime(request).clock.now(),
        )
    except RapportError as exc:
        if exc.status_code >= 500:
            raise
        db.rollback()
        error, problem = _save_problem(exc)
        return _builder(request, ui, db, segment=None, **form, error=error, problem=problem)
    db.commit()
    count = segment.member_count
    return redirect(
        request,
        f"/segments/{segment.id}",
        flash=Flash(
            "success", f"Segment “{segment.name}” saved with {count} member{'s' if count != 1 else ''}."
        ),
    )


@router.get("/{segment_id}")
def segment_edit(request: Request, segment_id: int, ui: UiPage, db: ReadDbSession) -> Response:
    """Open a saved segment in the builder."""
    segment = segments_service.get_segment(db, workspace_id=ui.workspace_id, segment_id=segment_id)
    return _builder(
        request,
        ui,
        db,
        segment=segment,
        name=segment.name,
        description=segment.description,
        text=segment.text,
        ast=segment.ast,
    )


@router.post("/{segment_id}")
def segment_update(
    request: Request,
    segment_id: int,
    ui: UiEditorPost,
    db: DbSession,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
) -> Response:
    """Save changes to a segment; a new definition bumps its version and re-counts its members."""
    segment = segments_service.get_segment(db, workspace_id=ui.workspace_id, segment_id=segment_id)
    form: dict[str, Any] = {"name": name, "description": description, "text": text}
    if problem := too_long(form, _LIMITS):
        return _builder(request, ui, db, segment=segment, **form, problem=problem)
    if not name.strip() or not text.strip():
        problem = "Give the segment a name." if not name.strip() else "Add at least one condition."
        return _builder(request, ui, db, segment=segment, **form, problem=problem)
    try:
        segment = segments_service.update_segment(
            db,
            workspace_id=ui.workspace_id,
            segment_id=segment_id,
            data=SegmentUpdate(name=name, description=description, text=text),
            now=_runtime(request).clock.now(),
        )
    except RapportError as exc:
        if exc.status_code >= 500:
            raise
        db.rollback()
        segment = segments_service.get_segment(db, workspace_id=ui.workspace_id, segment_id=segment_id)
        error, problem = _save_problem(exc)
        return _builder(request, ui, db, segment=segment, **form, error=error, problem=problem)
    db.commit()
    return redirect(
        request,
        f"/segments/{segment.id}",
        flash=Flash("success", f"Segment “{segment.name}” saved (version {segment.version})."),
    )


@router.post("/{segment_id}/duplicate")
def segment_duplicate(request: Request, segment_id: int, ui: UiEditorPost, db: DbSession) -> Response:
    """Save a copy of a segment and open it."""
    copy = segments_service.duplicate_segment(
        db,
        workspace_id=ui.workspace_id,
        segment_id=segment_id,
        name=_free_copy_name(db, ui.workspace_id, segment_id),
        actor=f"user:{ui.user_id}",
        now=_runtime(request).clock.now(),
    )
    db.commit()
    return redirect(request, f"/segments/{copy.id}", flash=Flash("success", f"Copied as “{copy.name}”."))


def _free_copy_name(db: Session, workspace_id: int, segment_id: int) -> str:
    source = segments_service.get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    taken = {s.name for s in segments_service.list_segments(db, workspace_id=workspace_id)}
    base = f"{source.name} (copy)"
    name, n = base, 2
    while name in taken:
        name, n = f"{source.name} (copy {n})", n + 1
    return name[:200]


@router.post("/{segment_id}/archive")
def segment_archive(request: Request, segment_id: int, ui: UiEditorPost, db: DbSession) -> Response:
    """Archive a segment (refused while another segment names it)."""
    try:
        segment = segments_service.archive_segment(
            db, workspace_id=ui.workspace_id, segment_id=segment_id, now=_runtime(request).clock.now()
        )
    except RapportError as exc:
        if exc.status_code >= 500:
            raise
        db.rollback()
        return redirect(
            request, f"/segments/{segment_id}", flash=Flash("error", f"Not archived: {exc.message}.")
        )
    db.commit()
    return redirect(request, "/segments", flash=Flash("success", f"Segment “{segment.name}” archived."))


@router.get("/{segment_id}/members")
def segment_members(
    request: Request,
    segment_id: int,
    ui: UiPage,
    db: ReadDbSession,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """List a segment's members, 50 a page."""
    segment = segments_service.get_segment(db, workspace_id=ui.workspace_id, segment_id=segment_id)
    members = segments_service.list_members(
        db,
        workspace_id=ui.workspace_id,
        segment_id=segment_id,
        page=Page(limit=MEMBERS_PAGE_SIZE + 1, offset=(page - 1) * MEMBERS_PAGE_SIZE),
    )
    return render(
        request,
        "segments/members.html",
        {
            "title": f"Members of {segment.name}",
            "segment": segment,
            "members": members[:MEMBERS_PAGE_SIZE],
            "page": page,
            "has_next": len(members) > MEMBERS_PAGE_SIZE,
            "first_index": (page - 1) * MEMBERS_PAGE_SIZE + 1,
        },
    )


@router.get("/{segment_id}/members.csv")
def segment_members_csv(segment_id: int, ui: UiPage, db: ReadDbSession) -> Response:
    """Download every member as formula-safe CSV."""
    lines = list(segments_service.export_csv(db, workspace_id=ui.workspace_id, segment_id=segment_id))
    return StreamingResponse(
        iter(lines),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="segment-{segment_id}.csv"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
