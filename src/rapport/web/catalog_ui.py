"""Data › Products: browse the catalogue (search, category, pages) and upload a CSV (marketers and admins),
with the report of every refused row."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from babel.numbers import format_currency
from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from rapport.api.deps import DbSession, ReadDbSession
from rapport.catalog import importer
from rapport.catalog import service as catalog_service
from rapport.errors import ValidationFailed
from rapport.kit.pagination import Page
from rapport.runtime import Runtime
from rapport.web.rendering import render
from rapport.web.session import UiEditorPost, UiPage, UiRoute, UiUser

router = APIRouter(prefix="/data/products", route_class=UiRoute, include_in_schema=False)

PAGE_SIZE = 50
MAX_PAGE = 2000
#: Largest CSV the upload form takes (the CLI takes any size).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Refused rows listed on the page after an upload.
ERRORS_SHOWN = 200


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def format_price(price: float | None, currency: str) -> str:
    """Format a price for people (``£4.50``); an unknown price shows as a dash."""
    if price is None:
        return "—"
    try:
        return str(format_currency(price, currency, locale="en_GB"))
    except (ValueError, KeyError):
        return f"{price:,.2f} {currency}"


def _query(q: str, category: str, page: int) -> str:
    params = {k: v for k, v in (("q", q), ("category", category)) if v}
    if page > 1:
        params["page"] = str(page)
    return "/data/products" + (f"?{urlencode(params)}" if params else "")


def _page(
    request: Request,
    ui: UiUser,
    db: Session,
    *,
    q: str = "",
    category: str = "",
    page: int = 1,
    report: importer.ImportReport | None = None,
    filename: str = "",
    upload_error: str = "",
    status_code: int = 200,
) -> Response:
    page = max(1, min(page, MAX_PAGE))
    products, total = catalog_service.list_products(
        db,
        workspace_id=ui.workspace_id,
        page=Page(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE),
        q=q.strip() or None,
        category=category or None,
    )
    rows: list[dict[str, Any]] = [
        {"product": p, "price": format_price(p.price, p.currency)} for p in products
    ]
    context = {
        "title": "Products",
        "rows": rows,
        "total": total,
        "q": q,
        "category": category,
        "categories": catalog_service.list_categories(db, workspace_id=ui.workspace_id),
        "page": page,
        "newer": _query(q, category, page - 1) if page > 1 else "",
        "older": _query(q, category, page + 1) if page * PAGE_SIZE < total else "",
        "report": report,
        "errors_shown": report.errors[:ERRORS_SHOWN] if report else [],
        "filename": filename,
        "upload_error": upload_error,
    }
    return render(request, "catalog/products.html", context, status_code=status_code)


@router.get("")
def products_page(
    request: Request,
    ui: UiPage,
    db: ReadDbSession,
    q: Annotated[str, Query(max_length=200)] = "",
    category: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    """List the catalogue by name, searched by name or id and filtered by category."""
    return _page(request, ui, db, q=q, category=category, page=page)


@router.post("/upload")
def upload_products(
    request: Request,
    ui: UiEditorPost,
    db: DbSession,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Import a CSV of products: good rows are stored, refused rows are listed with their reasons."""
    if file is None or not file.filename:
        return _page(request, ui, db, upload_error="Choose a CSV file to upload.", status_code=400)
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        message = "The file is larger than 20 MB: import it with `rapport products import FILE.csv`."
        return _page(request, ui, db, upload_error=message, status_code=400)
    try:
        report = importer.import_csv_bytes(
            db, workspace_id=ui.workspace_id, data=data, now=_runtime(request).clock.now()
        )
    except ValidationFailed as exc:
        db.rollback()
        return _page(request, ui, db, upload_error=exc.message, filename=file.filename, status_code=400)
    db.commit()
    return _page(request, ui, db, report=report, filename=file.filename)
