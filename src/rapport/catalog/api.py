"""HTTP routes of the product catalogue (/api/v1/products) and of a profile's recommendations."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Query, Response, UploadFile

from rapport.accounts.principal import Principal
from rapport.api.deps import DbSession, Offset, ReadDbSession, get_runtime, require_scope
from rapport.catalog import importer, service, stores
from rapport.catalog.schemas import (
    BatchIn,
    ImportReportRead,
    ProductPage,
    ProductRead,
    RecommendationRead,
    RowErrorRead,
)
from rapport.errors import PayloadTooLarge
from rapport.kit.pagination import Page
from rapport.runtime import Runtime
from rapport.segments import store_use

router = APIRouter(tags=["catalog"])

Reader = Annotated[Principal, Depends(require_scope("campaigns:read"))]
Writer = Annotated[Principal, Depends(require_scope("campaigns:write"))]
ProfileReader = Annotated[Principal, Depends(require_scope("profiles:read"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
#: The runtime port holding the per-workspace recommendation models of the profile route.
MODEL_CACHE_PORT = "catalog.models"
#: Largest CSV accepted by the upload route.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024

_PRODUCT_EXAMPLE = {
    "product_id": "FW-001",
    "name": "Leather Chelsea boots",
    "category": "Footwear",
    "price": 120.0,
    "currency": "GBP",
    "url": "https://shop.example/p/fw-001",
    "image_url": "https://shop.example/img/fw-001.jpg",
    "stock": 14,
    "attributes": {"colour": "brown"},
}


@router.post("/api/v1/products", response_model=ProductRead, status_code=201)
def upsert_product(
    principal: Writer,
    db: DbSession,
    runtime: RuntimeDep,
    response: Response,
    body: Annotated[dict[str, Any], Body(examples=[_PRODUCT_EXAMPLE])],
) -> object:
    """Create or replace one product by ``product_id`` (201 created, 200 replaced); unknown keys become
    attributes; a bad field answers 400 with ``details: [{row: 0, field, reason}]``."""
    product, created = service.upsert_product(
        db, workspace_id=principal.workspace_id, body=body, now=runtime.clock.now()
    )
    read = ProductRead.model_validate(product)
    db.commit()
    if not created:
        response.status_code = 200
    return read


@router.post("/api/v1/products/batch", response_model=ImportReportRead)
def upsert_products(principal: Writer, db: DbSession, runtime: RuntimeDep, body: BatchIn) -> object:
    """Create or replace up to 1,000 products; good ones are stored, each bad one is reported by its
    0-based index in ``products`` as ``row``."""
    result = service.upsert_batch(
        db, workspace_id=principal.workspace_id, bodies=body.products, now=runtime.clock.now()
    )
    db.commit()
    refused = len({e.row for e in result.errors})
    return ImportReportRead(
        rows=len(body.products),
        imported=len(body.products) - refused,
        created=result.created,
        updated=result.updated,
        refused=refused,
        errors=[RowErrorRead(**e.to_dict()) for e in result.errors],
        errors_truncated=False,
    )


@router.post("/api/v1/products/import", response_model=ImportReportRead)
def import_products(
    principal: Writer, db: DbSession, runtime: RuntimeDep, file: Annotated[UploadFile, File()]
) -> object:
    """Import a CSV of products (up to 20 MB); bad rows are reported by row number (header = 1) and
    skipped, good rows are stored."""
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge("the file is larger than 20 MB; use `rapport products import`")
    report = importer.import_csv_bytes(
        db, workspace_id=principal.workspace_id, data=data, now=runtime.clock.now()
    )
    db.commit()
    return report_read(report)


def report_read(report: importer.ImportReport) -> ImportReportRead:
    """Return the API shape of an import report."""
    return ImportReportRead(
        rows=report.rows,
        imported=report.imported,
        created=report.created,
        updated=report.updated,
        refused=report.refused,
        errors=[RowErrorRead(**e.to_dict()) for e in report.errors],
        errors_truncated=report.errors_truncated,
    )


@router.get("/api/v1/products", response_model=ProductPage)
def list_products(
    principal: Reader,
    db: ReadDbSession,
    q: Annotated[str | None, Query(max_length=200)] = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
    in_stock: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
) -> object:
    """List products by name; ``q`` searches name and id, ``category`` is exact, ``in_stock`` filters."""
    rows, total = service.list_products(
        db,
        workspace_id=principal.workspace_id,
        page=Page(limit=limit, offset=offset),
        q=q,
        category=category,
        in_stock=in_stock,
    )
    return {"total": total, "limit": limit, "offset": offset, "products": rows}


@router.get("/api/v1/product-categories", response_model=list[str])
def list_categories(principal: Reader, db: ReadDbSession) -> object:
    """Return the distinct product categories, sorted."""
    return service.list_categories(db, workspace_id=principal.workspace_id)


@router.get("/api/v1/products/{product_id}", response_model=ProductRead)
def read_product(product_id: str, principal: Reader, db: ReadDbSession) -> object:
    """Return one product by its own id."""
    return service.get_product(db, workspace_id=principal.workspace_id, product_id=product_id)


@router.delete("/api/v1/products/{product_id}", response_model=ProductRead)
def delete_product(product_id: str, principal: Writer, db: DbSession) -> object:
    """Delete one product; answers with what was deleted."""
    product = service.get_product(db, workspace_id=principal.workspace_id, product_id=product_id)
    read = ProductRead.model_validate(product)
    service.delete_product(db, workspace_id=principal.workspace_id, product_id=product_id)
    db.commit()
    return read


@router.get("/api/v1/profiles/{profile_id}/recommendations", response_model=list[RecommendationRead])
def profile_recommendations(
    profile_id: int,
    principal: ProfileReader,
    db: ReadDbSession,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = 3,
) -> object:
    """Recommend products to a person: bought together with what they bought, popular in their favourite
    category, then popular overall; never what they bought or what is out of stock."""
    cache = runtime.ports.setdefault(MODEL_CACHE_PORT, service.ModelCache())
    return service.recommendations_for_profile(
        db,
        workspace_id=principal.workspace_id,
        profile_id=profile_id,
        limit=limit,
        now=runtime.clock.now(),
        cache=cache,
    )


# ---- stores ---------------------------------------------------------------------------------------------

SettingsWriter = Annotated[Principal, Depends(require_scope("settings:write"))]
_STORE_EXAMPLE = [
    {"id": "st-lds", "name": "Leeds Briggate", "latitude": 53.798, "longitude": -1.543, "city": "Leeds",
     "postcode": "LS1 6HD", "opens_at": "09:00", "closes_at": "17:30"},
]  # fmt: skip


@router.get("/api/v1/stores")
def list_stores(principal: Reader, db: ReadDbSession) -> dict[str, Any]:
    """The workspace's stores (``within 5 km of store "…"`` in segments, ``{{ store.* }}`` in templates)."""
    return {"stores": stores.list_stores(db, workspace_id=principal.workspace_id)}


@router.put("/api/v1/stores")
def replace_stores(
    principal: SettingsWriter,
    db: DbSession,
    body: Annotated[list[Any], Body(examples=[_STORE_EXAMPLE])],
    allow_empty: bool = False,
) -> dict[str, Any]:
    """Replace every store: each needs ``name``, ``latitude`` and ``longitude`` (``lat``/``lon`` accepted)
    and may have id, address, city, postcode, phone, url, opens_at/closes_at (HH:MM) and opening_hours.
    Any bad row answers 400 with ``details: [{row, field, reason}]`` and changes nothing; audited. An empty
    list (removing every store) needs ``?allow_empty=true``; a list that drops a store a segment places
    customers by answers 409 ``stores_in_use`` naming them."""
    saved = stores.replace_stores(
        db,
        workspace_id=principal.workspace_id,
        items=body,
        actor=principal.actor,
        allow_empty=allow_empty,
        guard=functools.partial(store_use.check_stores_kept, db, workspace_id=principal.workspace_id),
    )
    db.commit()
    return {"stores": saved}
