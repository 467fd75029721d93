"""The catalogue service: upsert, list, get and delete products; recommendations for many people at once.

Recommendations are computed, not stored: :func:`build_model` reads the workspace's catalogue and whole
purchase history once and :func:`recommendations_for` scores any number of people against it. The
campaign engine builds the model once per send (``model=`` argument) and reuses it for every batch; a
call without a model builds its own (one pass over the purchase events). The per-profile API keeps models
in a :class:`ModelCache` (in the runtime's ports), rebuilt when the catalogue changes, a newer purchase
arrives, or after ``max_age``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from rapport.catalog import recommend, repository
from rapport.catalog.validation import FieldError, ProductFields, api_row, validate_product
from rapport.errors import NotFound, ValidationFailed
from rapport.kit.pagination import Page
from rapport.models import Product
from rapport.process import traits_service
from rapport.process.computed import PurchaseSettings
from rapport.profiles import service as profiles_service

FAVOURITE_TRAIT = "favourite_category"
MAX_LIMIT = 20
#: Products one render may name by id (``catalog["sku-1"]``); a template naming more gets the first ones.
MAX_REFERENCED = 200


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    """How many distinct products an upsert created and how many it replaced."""

    created: int
    updated: int


def upsert_valid(
    db: Session, *, workspace_id: int, rows: Sequence[ProductFields], now: datetime
) -> UpsertCounts:
    """Insert or replace validated products by product id (the last of duplicate ids wins); flushes."""
    latest = {row.product_id: row.values() for row in rows}
    if not latest:
        return UpsertCounts(0, 0)
    existing = repository.existing_product_ids(db, workspace_id, latest)
    repository.upsert_products(db, workspace_id, list(latest.values()), now)
    return UpsertCounts(created=len(latest) - len(existing), updated=len(existing))


def upsert_product(
    db: Session, *, workspace_id: int, body: dict[str, Any], now: datetime
) -> tuple[Product, bool]:
    """Validate one JSON product and insert or replace it; returns it and whether it is new.

    Raises ValidationFailed with one ``{row, field, reason}`` per problem (``row`` is 0).
    """
    fields, errors = validate_product(api_row(body), row=0)
    if fields is None:
        first = errors[0]
        raise ValidationFailed(f"{first.field}: {first.reason}", details=[e.to_dict() for e in errors])
    counts = upsert_valid(db, workspace_id=workspace_id, rows=[fields], now=now)
    db.expire_all()
    return get_product(db, workspace_id=workspace_id, product_id=fields.product_id), counts.created == 1


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The good products upserted, and the refused ones by batch index."""

    created: int
    updated: int
    errors: list[FieldError]


def upsert_batch(db: Session, *, workspace_id: int, bodies: Sequence[Any], now: datetime) -> BatchResult:
    """Validate each product of a batch, upsert the good ones, and report the others by index."""
    good: list[ProductFields] = []
    errors: list[FieldError] = []
    for i, body in enumerate(bodies):
        if not isinstance(body, dict):
            errors.append(FieldError(i, "", "must be an object"))
            continue
        fields, problems = validate_product(api_row(body), row=i)
        if fields is None:
            errors.extend(problems)
        else:
            good.append(fields)
    counts = upsert_valid(db, workspace_id=workspace_id, rows=good, now=now)
    return BatchResult(counts.created, counts.updated, errors)


def get_product(db: Session, *, workspace_id: int, product_id: str) -> Product:
    """Return one product by its own id; NotFound otherwise."""
    product = repository.get_product(db, workspace_id, product_id)
    if product is None:
        raise NotFound("no such product")
    return product


def delete_product(db: Session, *, workspace_id: int, product_id: str) -> None:
    """Delete one product by its own id; NotFound when there is none."""
    if repository.delete_product(db, workspace_id, product_id) == 0:
        raise NotFound("no such product")


def list_products(
    db: Session,
    *,
    workspace_id: int,
    page: Page,
    q: str | None = None,
    category: str | None = None,
    in_stock: bool | None = None,
) -> tuple[list[Product], int]:
    """Return a page of products (by name) matching ``q`` (name or id), category and stock, and the total."""
    filters: dict[str, Any] = {"q": q or None, "category": category, "in_stock": in_stock}
    rows = repository.list_products(db, workspace_id, page=page, **filters)
    return rows, repository.count_products(db, workspace_id, **filters)


def list_categories(db: Session, *, workspace_id: int) -> list[str]:
    """Return the workspace's distinct product categories, sorted."""
    return repository.categories(db, workspace_id)


# -- recommendations ------------------------------------------------------------------------------------


def _purchase_names(db: Session, workspace_id: int) -> tuple[str, ...]:
    return PurchaseSettings.from_settings(repository.workspace_settings(db, workspace_id)).events


def _purchases(db: Session, workspace_id: int) -> Iterator[recommend.Purchase]:
    names = _purchase_names(db, workspace_id)
    for profile_id, at, properties in repository.purchase_events(db, workspace_id, names):
        ids = recommend.purchased_product_ids(properties)
        if ids:
            yield recommend.Purchase(profile_id, at, ids)


def build_model(
    db: Session,
    *,
    workspace_id: int,
    now: datetime,
    popular_days: int = recommend.DEFAULT_POPULAR_DAYS,
) -> recommend.Model:
    """Learn the workspace's recommendation model from its catalogue and every purchase event."""
    items = [recommend.Item(*row) for row in repository.catalogue_rows(db, workspace_id)]
    return recommend.build_model(_purchases(db, workspace_id), items, now=now, popular_days=popular_days)


class ModelCache:
    """Recommendation models per workspace, reused while the catalogue and the latest purchase time are
    unchanged and the model is younger than ``max_age`` (a purchase linked to its profile late, or
    back-dated, shows up within ``max_age``)."""

    def __init__(self, *, max_age: timedelta = timedelta(minutes=5)) -> None:
        self.max_age = max_age
        self._models: dict[int, tuple[tuple[Any, ...], recommend.Model]] = {}
        self._lock = threading.Lock()

    def get(self, db: Session, *, workspace_id: int, now: datetime) -> recommend.Model:
        """Return the workspace's model, rebuilt first when stale."""
        names = _purchase_names(db, workspace_id)
        key = (
            names,
            repository.catalogue_fingerprint(db, workspace_id),
            repository.latest_purchase_times(db, workspace_id, names),
        )
        with self._lock:
            cached = self._models.get(workspace_id)
        if cached is not None and cached[0] == key and now - cached[1].built_at < self.max_age:
            return cached[1]
        model = build_model(db, workspace_id=workspace_id, now=now)
        with self._lock:
            self._models[workspace_id] = (key, model)
        return model


def _favourites(
    db: Session, workspace_id: int, profile_ids: Sequence[int], now: datetime
) -> dict[int, str | None]:
    values = traits_service.read_computed(db, workspace_id, list(profile_ids), [FAVOURITE_TRAIT], now)
    out: dict[int, str | None] = {}
    for pid, traits in values.items():
        value = traits.get(FAVOURITE_TRAIT)
        out[pid] = value if isinstance(value, str) and value else None
    return out


#: ``catalog["sku-1"]`` in Liquid: the products a template names by a literal id (loaded for its render).
CATALOG_REFERENCE = re.compile(r"""\bcatalog\[\s*(?:"([^"]{1,200})"|'([^']{1,200})')\s*\]""")


def referenced_product_ids(sources: Iterable[str]) -> set[str]:
    """Return the product ids that Liquid ``sources`` read as ``catalog["id"]`` (or with single quotes)."""
    return {a or b for source in sources for a, b in CATALOG_REFERENCE.findall(source)}


def products_by_id(
    db: Session, *, workspace_id: int, product_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Return the named products of the workspace as templates read them (``catalog["sku-1"].name``); ids
    that are not in the catalogue are absent."""
    ids = sorted(set(product_ids))[:MAX_REFERENCED]
    if not ids:
        return {}
    rows = repository.catalogue_rows(db, workspace_id, ids)
    return {str(row[0]): recommend.Item(*row).to_dict("catalog") for row in rows}


def recommendations_for(
    db: Session,
    *,
    workspace_id: int,
    profile_ids: Sequence[int],
    limit: int = 3,
    now: datetime,
    model: recommend.Model | None = None,
) -> dict[int, list[dict[str, Any]]]:
    """Return up to ``limit`` recommended products per profile, as JSON-able dicts, for every id asked.

    Each dict has product_id, name, category, price, currency, url, image_url and reason. Pass a
    ``model`` from :func:`build_model` to reuse it across calls; without one it is built here.
    """
    limit = max(0, min(limit, MAX_LIMIT))
    ids = list(dict.fromkeys(int(pid) for pid in profile_ids))
    if model is None:
        model = build_model(db, workspace_id=workspace_id, now=now)
    favourites = _favourites(db, workspace_id, ids, now) if ids else {}
    picks = recommend.recommend(model, ids, favourites=favourites, limit=limit)
    return {pid: [model.items[i].to_dict(reason) for i, reason in picks.get(pid, [])] for pid in ids}


def recommendations_for_profile(
    db: Session,
    *,
    workspace_id: int,
    profile_id: int,
    limit: int,
    now: datetime,
    cache: ModelCache | None = None,
) -> list[dict[str, Any]]:
    """Return recommendations for one live profile of the workspace (a merged id: its survivor)."""
    profile = profiles_service.get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    model = cache.get(db, workspace_id=workspace_id, now=now) if cache is not None else None
    found = recommendations_for(
        db, workspace_id=workspace_id, profile_ids=[profile.id], limit=limit, now=now, model=model
    )
    return found[profile.id]
