"""Every query of the catalogue domain: products and the purchase events recommendations learn from."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.kit.pagination import Page
from rapport.models import Event, Product, Workspace

#: Ids per IN (...) list: below SQLite's variable limit, small enough for PostgreSQL plans.
CHUNK = 900
#: Rows per multi-row INSERT (9 columns a row, under SQLite's 32,766 bound variables).
INSERT_CHUNK = 500
_UPDATED_COLUMNS = ("name", "category", "price", "currency", "url", "image_url", "stock", "attributes")


def existing_product_ids(db: Session, workspace_id: int, product_ids: Iterable[str]) -> set[str]:
    """Return which of ``product_ids`` the workspace's catalogue already holds."""
    ids = sorted(set(product_ids))
    found: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        found.update(
            db.scalars(
                select(Product.product_id).where(
                    Product.workspace_id == workspace_id, Product.product_id.in_(ids[i : i + CHUNK])
                )
            )
        )
    return found


def upsert_products(db: Session, workspace_id: int, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """Insert or replace products by ``(workspace_id, product_id)``; ``rows`` hold distinct product ids."""
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    for i in range(0, len(rows), INSERT_CHUNK):
        values = [
            {**row, "workspace_id": workspace_id, "created_at": now, "updated_at": now}
            for row in rows[i : i + INSERT_CHUNK]
        ]
        stmt = insert(Product).values(values)
        update = {name: stmt.excluded[name] for name in _UPDATED_COLUMNS}
        update["updated_at"] = stmt.excluded.updated_at
        db.execute(stmt.on_conflict_do_update(index_elements=["workspace_id", "product_id"], set_=update))


def get_product(db: Session, workspace_id: int, product_id: str) -> Product | None:
    """Return one product of the workspace by its own id, or None."""
    return db.scalar(
        select(Product).where(Product.workspace_id == workspace_id, Product.product_id == product_id)
    )


def delete_product(db: Session, workspace_id: int, product_id: str) -> int:
    """Delete one product; returns how many rows went (0 or 1)."""
    result = db.execute(
        delete(Product).where(Product.workspace_id == workspace_id, Product.product_id == product_id)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(
    stmt: Select[Any], workspace_id: int, q: str | None, category: str | None, in_stock: bool | None
) -> Select[Any]:
    stmt = stmt.where(Product.workspace_id == workspace_id)
    if q:
        pattern = f"%{_escape_like(q.strip().lower())}%"
        stmt = stmt.where(
            or_(
                func.lower(Product.name).like(pattern, escape="\\"),
                func.lower(Product.product_id).like(pattern, escape="\\"),
            )
        )
    if category is not None:
        stmt = stmt.where(Product.category == category)
    if in_stock is True:
        stmt = stmt.where(or_(Product.stock.is_(None), Product.stock > 0))
    elif in_stock is False:
        stmt = stmt.where(Product.stock == 0)
    return stmt


def list_products(
    db: Session,
    workspace_id: int,
    *,
    page: Page,
    q: str | None = None,
    category: str | None = None,
    in_stock: bool | None = None,
) -> list[Product]:
    """Return a page of the workspace's products by name, filtered by text, category and stock."""
    stmt = _filtered(select(Product), workspace_id, q, category, in_stock)
    stmt = stmt.order_by(Product.name, Product.product_id).limit(page.limit).offset(page.offset)
    return list(db.scalars(stmt))


def count_products(
    db: Session,
    workspace_id: int,
    *,
    q: str | None = None,
    category: str | None = None,
    in_stock: bool | None = None,
) -> int:
    """Count the products matching the same filters as :func:`list_products`."""
    stmt = _filtered(select(func.count()).select_from(Product), workspace_id, q, category, in_stock)
    return int(db.scalar(stmt) or 0)


def categories(db: Session, workspace_id: int) -> list[str]:
    """Return the workspace's distinct non-empty product categories, sorted."""
    stmt = (
        select(Product.category)
        .where(Product.workspace_id == workspace_id, Product.category != "")
        .group_by(Product.category)
        .order_by(Product.category)
    )
    return list(db.scalars(stmt))


def catalogue_rows(
    db: Session, workspace_id: int, product_ids: Sequence[str] | None = None
) -> list[tuple[Any, ...]]:
    """Return (product_id, name, category, price, currency, url, image_url, stock) of every product (or of
    those of ``product_ids``)."""
    stmt = select(
        Product.product_id,
        Product.name,
        Product.category,
        Product.price,
        Product.currency,
        Product.url,
        Product.image_url,
        Product.stock,
    ).where(Product.workspace_id == workspace_id)
    if product_ids is not None:
        stmt = stmt.where(Product.product_id.in_(list(product_ids)))
    return [tuple(row) for row in db.execute(stmt)]


def workspace_settings(db: Session, workspace_id: int) -> dict[str, Any]:
    """Return the workspace's settings dict (empty when none)."""
    settings = db.scalar(select(Workspace.settings).where(Workspace.id == workspace_id))
    return settings if isinstance(settings, dict) else {}


def purchase_events(
    db: Session, workspace_id: int, names: Sequence[str], *, since: datetime | None = None
) -> Iterator[tuple[int, datetime, dict[str, Any]]]:
    """Yield (profile_id, timestamp, properties) of the workspace's linked purchase events (streamed)."""
    stmt = select(Event.profile_id, Event.timestamp, Event.properties).where(
        Event.workspace_id == workspace_id,
        Event.event.in_(sorted(set(names))),
        Event.profile_id.is_not(None),
    )
    if since is not None:
        stmt = stmt.where(Event.timestamp >= since)
    for profile_id, timestamp, properties in db.execute(stmt.execution_options(yield_per=5000)):
        yield int(profile_id), timestamp, properties if isinstance(properties, dict) else {}


def catalogue_fingerprint(db: Session, workspace_id: int) -> tuple[Any, ...]:
    """Return (product count, latest change, products out of stock, total stock): an upsert at a later
    time, a delete or any stock change alters it."""
    row = db.execute(
        select(
            func.count(),
            func.max(Product.updated_at),
            func.count(case((Product.stock == 0, 1))),
            func.sum(Product.stock),
        ).where(Product.workspace_id == workspace_id)
    ).one()
    return tuple(row)


def latest_purchase_times(db: Session, workspace_id: int, names: Sequence[str]) -> tuple[Any, ...]:
    """Return the latest timestamp of each linked purchase event name (an index seek each)."""
    return tuple(
        db.scalar(
            select(func.max(Event.timestamp)).where(
                Event.workspace_id == workspace_id, Event.event == name, Event.profile_id.is_not(None)
            )
        )
        for name in sorted(set(names))
    )
