"""Pydantic shapes of the catalogue API: products, import reports and recommendations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Products per ``POST /api/v1/products/batch``.
MAX_BATCH = 1000


class ProductRead(BaseModel):
    """A product of the catalogue."""

    model_config = ConfigDict(from_attributes=True)

    product_id: str
    name: str
    category: str
    price: float | None
    currency: str
    url: str
    image_url: str
    stock: int | None
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    """A page of products and how many match in all."""

    total: int
    limit: int
    offset: int
    products: list[ProductRead]


class ProductUpserted(BaseModel):
    """The product as stored, and whether the upsert created it."""

    created: bool
    product: ProductRead


class BatchIn(BaseModel):
    """Up to 1,000 product objects (``product_id``, ``name``, ``category``, ``price``, ``currency``,
    ``url``, ``image_url``, ``stock``, ``attributes``; other keys become attributes)."""

    products: list[Any] = Field(max_length=MAX_BATCH)


class RowErrorRead(BaseModel):
    """Why one row was refused: its CSV row number (the header is row 1) or batch index, field, reason."""

    row: int
    field: str
    reason: str


class ImportReportRead(BaseModel):
    """What an import did: rows read, imported (created + updated), refused with their errors."""

    rows: int
    imported: int
    created: int
    updated: int
    refused: int
    errors: list[RowErrorRead]
    errors_truncated: bool


class RecommendationRead(BaseModel):
    """One recommended product, with why it was chosen (bought_together, popular_in_category, popular)."""

    product_id: str
    name: str
    category: str
    price: float | None
    currency: str
    url: str
    image_url: str
    stock: int | None
    reason: str
