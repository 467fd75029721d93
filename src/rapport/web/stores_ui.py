"""Settings → Stores: the workspace's stores in a table; admins replace them with a CSV or JSON upload
(checked whole by catalog/stores.py: a bad row changes nothing and every problem is listed)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from rapport.api.deps import DbSession, ReadDbSession
from rapport.catalog import stores as stores_service
from rapport.errors import Conflict, ValidationFailed
from rapport.segments import store_use
from rapport.web.rendering import Flash, redirect, render
from rapport.web.session import UiAdminPost, UiPage, UiRoute, UiUser
from rapport.web.settings import settings_tabs

router = APIRouter(prefix="/settings/stores", route_class=UiRoute, include_in_schema=False)
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
PROBLEMS_SHOWN = 50


def _page(
    request: Request,
    ui: UiUser,
    db: Session,
    *,
    error: str = "",
    problems: list[dict[str, Any]] | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "title": "Stores",
        "tabs": settings_tabs(),
        "active_tab": "/settings/stores",
        "stores": stores_service.list_stores(db, workspace_id=ui.workspace_id),
        "error": error,
        "problems": (problems or [])[:PROBLEMS_SHOWN],
        "more_problems": max(0, len(problems or []) - PROBLEMS_SHOWN),
    }
    return render(request, "settings/stores.html", context, status_code=status_code)


@router.get("")
def stores_page(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """The workspace's stores; admins upload a replacement list."""
    return _page(request, ui, db)


@router.post("")
def upload_stores(
    request: Request,
    ui: UiAdminPost,
    db: DbSession,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Replace every store with those of the uploaded CSV or JSON file (all rows checked first)."""
    if file is None or not file.filename:
        return _page(request, ui, db, error="Choose a CSV or JSON file to upload.", status_code=400)
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        message = "The file is larger than 2 MB: import it with `rapport stores import FILE`."
        return _page(request, ui, db, error=message, status_code=400)
    kind = "csv" if file.filename.lower().endswith(".csv") else "json"
    try:
        rows, first = stores_service.read_file(data.decode("utf-8-sig"), kind=kind)
        saved = stores_service.replace_stores(
            db,
            workspace_id=ui.workspace_id,
            items=rows,
            actor=ui.principal.actor,
            first_row=first,
            guard=functools.partial(store_use.check_stores_kept, db, workspace_id=ui.workspace_id),
        )
    except UnicodeDecodeError:
        return _page(request, ui, db, error=f"{file.filename} is not UTF-8 text.", status_code=400)
    except Conflict as exc:  # the new list drops stores that segments use
        db.rollback()
        return _page(request, ui, db, error=f"{file.filename}: {exc.message}", status_code=409)
    except ValidationFailed as exc:  # a file that does not parse, or rows refused (``details``)
        db.rollback()
        problems = exc.details if isinstance(exc.details, list) else []
        message = f"{len(problems)} problem(s), nothing was changed." if problems else exc.message
        return _page(request, ui, db, error=f"{file.filename}: {message}", problems=problems, status_code=400)
    db.commit()
    return redirect(request, "/settings/stores", flash=Flash("success", f"Stores saved: {len(saved)}."))
