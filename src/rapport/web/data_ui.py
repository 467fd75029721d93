"""Data: the section's landing page, lifestyle reference tables and quarantined events; imports and computed
traits live in :mod:`rapport.web.data_imports` and :mod:`rapport.web.data_traits`; :data:`ROUTERS` lists
all three routers. Products are :mod:`rapport.web.catalog_ui`'s.

Lifestyle tables are changed by admins (the API asks ``settings:write``); quarantined events are corrected
and replayed by marketers and admins (``events:write``). Lifestyle changes are audited here; the quarantine
service audits its own.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from rapport.api.deps import DbSession, ReadDbSession
from rapport.audit import service as audit_service
from rapport.collect import import_tasks
from rapport.collect import quarantine as quarantine_service
from rapport.errors import ValidationFailed
from rapport.kit.pagination import Page
from rapport.process import lifestyle, traits_service
from rapport.runtime import Runtime
from rapport.web import data_imports, data_traits
from rapport.web.rendering import Flash, redirect, render
from rapport.web.session import UiAdminPost, UiEditorPost, UiPage, UiRoute, UiUser
from rapport.worker import queue

router = APIRouter(route_class=UiRoute, include_in_schema=False)

MAX_TABLE_BYTES = 20 * 1024 * 1024
QUARANTINE_PAGE = 50
MAX_PAYLOAD_CHARS = 32_000


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get("/data")
def data_home(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """The Data section: what each part is for, with a figure or two."""
    imports = queue.list_jobs(db, kind=import_tasks.JOB_KIND, workspace_id=ui.workspace_id, limit=1)
    open_quarantine = quarantine_service.list_quarantined(
        db, workspace_id=ui.workspace_id, page=Page(limit=101, offset=0)
    )
    context = {
        "title": "Data",
        "last_import": imports[0] if imports else None,
        "traits": len(traits_service.list_definitions(db, workspace_id=ui.workspace_id)),
        "tables": len(lifestyle.list_tables(db, workspace_id=ui.workspace_id)),
        "quarantined": len(open_quarantine),
    }
    return render(request, "data/index.html", context)


# -- lifestyle tables -------------------------------------------------------------------------------------


def _lifestyle_page(
    request: Request,
    ui: UiUser,
    db: Session,
    *,
    error: str = "",
    name: str = "",
    status_code: int = 200,
) -> Response:
    context = {
        "title": "Lifestyle tables",
        "tables": lifestyle.list_tables(db, workspace_id=ui.workspace_id),
        "error": error,
        "name": name,
    }
    return render(request, "data/lifestyle.html", context, status_code=status_code)


@router.get("/data/lifestyle")
def lifestyle_page(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """The workspace's lifestyle reference tables; admins upload and delete."""
    return _lifestyle_page(request, ui, db)


@router.post("/data/lifestyle")
def upload_table(
    request: Request,
    ui: UiAdminPost,
    db: DbSession,
    name: Annotated[str, Form(max_length=100)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Create or replace a table from a CSV; profiles are matched again in the background."""
    if file is None or not file.filename:
        return _lifestyle_page(request, ui, db, error="Choose a CSV file.", name=name, status_code=400)
    data = file.file.read(MAX_TABLE_BYTES + 1)
    try:
        if len(data) > MAX_TABLE_BYTES:
            raise ValidationFailed("the table is larger than 20 MB")
        table = lifestyle.save_table(
            db, workspace_id=ui.workspace_id, name=name, data=data, now=_runtime(request).clock.now()
        )
    except ValidationFailed as exc:
        db.rollback()
        return _lifestyle_page(request, ui, db, error=exc.message, name=name, status_code=400)
    audit_service.record(
        db,
        workspace_id=ui.workspace_id,
        actor=ui.principal.actor,
        action="lifestyle.table_saved",
        target_type="lifestyle_table",
        target_id=table.id,
        details={"name": table.name, "rows": table.row_count, "columns": table.columns},
    )
    label, rows = table.name, table.row_count
    db.commit()
    flash = Flash("success", f"Table {label} is saved ({rows:,} keys); customers are being matched.")
    return redirect(request, "/data/lifestyle", flash=flash)


@router.post("/data/lifestyle/{table_id}/delete")
def delete_table(request: Request, table_id: int, ui: UiAdminPost, db: DbSession) -> Response:
    """Delete a table; customers are matched again against the others in the background."""
    table = lifestyle.get_table(db, workspace_id=ui.workspace_id, table_id=table_id)
    label = table.name
    lifestyle.delete_table(
        db, workspace_id=ui.workspace_id, table_id=table_id, now=_runtime(request).clock.now()
    )
    audit_service.record(
        db,
        workspace_id=ui.workspace_id,
        actor=ui.principal.actor,
        action="lifestyle.table_deleted",
        target_type="lifestyle_table",
        target_id=table_id,
        details={"name": label},
    )
    db.commit()
    return redirect(request, "/data/lifestyle", flash=Flash("success", f"Table {label} is deleted."))


# -- quarantined events -----------------------------------------------------------------------------------


def _summary(payload: Any) -> dict[str, str]:
    if not isinstance(payload, dict):
        return {"type": "", "event": "", "who": ""}
    who = payload.get("userId") or payload.get("anonymousId") or ""
    return {
        "type": str(payload.get("type") or ""),
        "event": str(payload.get("event") or payload.get("name") or ""),
        "who": str(who)[:80],
    }


@router.get("/data/quarantine")
def quarantine_page(
    request: Request, ui: UiPage, db: ReadDbSession, replayed: bool = False, page: int = 1
) -> Response:
    """Quarantined events with why they were refused, newest first (open ones, or also replayed ones)."""
    page = max(1, min(page, 10_000))
    rows = quarantine_service.list_quarantined(
        db,
        workspace_id=ui.workspace_id,
        page=Page(limit=QUARANTINE_PAGE + 1, offset=(page - 1) * QUARANTINE_PAGE),
        include_replayed=replayed,
    )
    items = [
        {"row": r, "summary": _summary(quarantine_service.payload_of(r))} for r in rows[:QUARANTINE_PAGE]
    ]
    context = {
        "title": "Quarantined events",
        "items": items,
        "replayed": replayed,
        "page": page,
        "has_more": len(rows) > QUARANTINE_PAGE,
    }
    return render(request, "data/quarantine.html", context)


def _event_page(
    request: Request,
    ui: UiUser,
    db: Session,
    quarantine_id: int,
    *,
    draft: str | None = None,
    error: str = "",
) -> Response:
    row = quarantine_service.get_quarantined(db, workspace_id=ui.workspace_id, quarantine_id=quarantine_id)
    payload = quarantine_service.payload_of(row)
    pretty = json.dumps(payload, indent=2, ensure_ascii=False) if not isinstance(payload, str) else payload
    details = row.details if isinstance(row.details, dict) else {}
    context = {
        "title": f"Quarantined event #{row.id}",
        "row": row,
        "payload": pretty,
        "draft": pretty if draft is None else draft,
        "errors": details.get("errors") or [],
        "error": error,
    }
    return render(request, "data/quarantine_event.html", context, status_code=400 if error else 200)


@router.get("/data/quarantine/{quarantine_id}")
def quarantined_event(request: Request, quarantine_id: int, ui: UiPage, db: ReadDbSession) -> Response:
    """One quarantined event: its payload, why it was refused, and (for editors) a corrected payload form."""
    return _event_page(request, ui, db, quarantine_id)


@router.post("/data/quarantine/replay")
def replay_all(request: Request, ui: UiEditorPost, db: DbSession) -> Response:
    """Re-validate every open quarantined event (oldest first, up to 1,000) and store those that pass."""
    results = quarantine_service.replay(
        db, workspace_id=ui.workspace_id, principal=ui.principal, now=_runtime(request).clock.now()
    )
    db.commit()
    stored = sum(r.status == "stored" for r in results)
    invalid = sum(r.status == "invalid" for r in results)
    if not results:
        flash = Flash("info", "Nothing to replay.")
    else:
        flash = Flash(
            "success" if not invalid else "info",
            f"Replayed {len(results):,}: {stored:,} stored, {invalid:,} still invalid.",
        )
    return redirect(request, "/data/quarantine", flash=flash)


@router.post("/data/quarantine/{quarantine_id}/replay")
def replay_one(request: Request, quarantine_id: int, ui: UiEditorPost, db: DbSession) -> Response:
    """Re-validate one quarantined event; stored when it now passes."""
    results = quarantine_service.replay(
        db,
        workspace_id=ui.workspace_id,
        principal=ui.principal,
        now=_runtime(request).clock.now(),
        ids=[quarantine_id],
    )
    db.commit()
    result = results[0]
    if result.status == "stored":
        flash = Flash("success", f"Event #{quarantine_id} is stored as {result.message_id}.")
    elif result.status == "invalid":
        flash = Flash("error", f"Event #{quarantine_id} is still invalid: {result.reason}")
    else:
        flash = Flash("info", f"Event #{quarantine_id} was already replayed.")
    return redirect(request, f"/data/quarantine/{quarantine_id}", flash=flash)


@router.post("/data/quarantine/{quarantine_id}/payload")
def correct_payload(
    request: Request,
    quarantine_id: int,
    ui: UiEditorPost,
    db: DbSession,
    payload: Annotated[str, Form(max_length=MAX_PAYLOAD_CHARS)] = "",
) -> Response:
    """Replace the payload with a corrected JSON object (audited by the service); replay it afterwards."""
    try:
        parsed = json.loads(payload)
    except ValueError as exc:
        return _event_page(request, ui, db, quarantine_id, draft=payload, error=f"Not JSON: {exc}")
    if not isinstance(parsed, dict):
        return _event_page(
            request, ui, db, quarantine_id, draft=payload, error="The payload is a JSON object."
        )
    try:
        quarantine_service.update_payload(
            db,
            workspace_id=ui.workspace_id,
            quarantine_id=quarantine_id,
            payload=parsed,
            actor=ui.principal.actor,
        )
    except ValidationFailed as exc:
        db.rollback()
        return _event_page(request, ui, db, quarantine_id, draft=payload, error=exc.message)
    db.commit()
    flash = Flash("success", "The corrected payload is saved: replay it to store the event.")
    return redirect(request, f"/data/quarantine/{quarantine_id}", flash=flash)


#: Every router of the Data section, for :func:`rapport.web.mount.mount` to include.
ROUTERS: tuple[APIRouter, ...] = (router, data_imports.router, data_traits.router)
