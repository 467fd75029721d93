"""Pure checks of one product row (from a CSV line or a JSON object) and the CSV header mapping.

Both import paths go through :func:`validate_product`, so a CSV upload and ``POST /api/v1/products``
accept and refuse exactly the same values, each refusal naming its field and reason.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from babel.numbers import list_currencies

#: The product's own columns and the headers (normalised) that map to each, first match wins.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "product_id": ("product_id", "id", "sku"),
    "name": ("name", "title"),
    "category": ("category",),
    "price": ("price",),
    "currency": ("currency",),
    "url": ("url", "link"),
    "image_url": ("image_url", "image", "image_link"),
    "stock": ("stock",),
}
FIELDS: tuple[str, ...] = tuple(HEADER_ALIASES)
REQUIRED: tuple[str, ...] = ("product_id", "name")
DEFAULT_CURRENCY = "GBP"
MAX_ID = 200
MAX_NAME = 400
MAX_CATEGORY = 200
MAX_URL = 2000
MAX_ATTRIBUTES_BYTES = 16_384
MAX_STOCK = 2**31 - 1

_CURRENCIES = frozenset(list_currencies())
_HEADER_JUNK = re.compile(r"[\s\-.]+")


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why one field of one row was refused; ``row`` is the CSV row (header = 1) or the batch index."""

    row: int
    field: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Return the error as a JSON-able dict."""
        return {"row": self.row, "field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ProductFields:
    """A valid product row, ready to upsert."""

    product_id: str
    name: str
    category: str = ""
    price: float | None = None
    currency: str = DEFAULT_CURRENCY
    url: str = ""
    image_url: str = ""
    stock: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        """Return the columns of the row as a dict (``product_id`` included)."""
        return {
            "product_id": self.product_id,
            "name": self.name,
            "category": self.category,
            "price": self.price,
            "currency": self.currency,
            "url": self.url,
            "image_url": self.image_url,
            "stock": self.stock,
            "attributes": self.attributes,
        }


def normalise_header(header: str) -> str:
    """Return a header as compared with the aliases: trimmed, lower case, spaces/dashes/dots as ``_``."""
    return _HEADER_JUNK.sub("_", header.strip().lstrip("\ufeff").lower()).strip("_")


@dataclass(frozen=True, slots=True)
class HeaderMap:
    """Which CSV column feeds which product field; the other columns become attributes."""

    fields: dict[str, int]
    attributes: dict[str, int]


def map_headers(headers: Sequence[str]) -> tuple[HeaderMap | None, list[str]]:
    """Map a CSV header line to product fields; returns the map or the problems (missing, duplicate)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(headers):
        key = normalise_header(raw)
        if not key:
            problems.append(f"column {i + 1} has no header")
        elif key in seen:
            problems.append(f"header {raw.strip()!r} appears twice")
        else:
            seen[key] = i
    fields: dict[str, int] = {}
    for name, aliases in HEADER_ALIASES.items():
        for alias in aliases:
            if alias in seen:
                fields[name] = seen[alias]
                break
    for name in REQUIRED:
        if name not in fields:
            wanted = " or ".join(HEADER_ALIASES[name])
            problems.append(f"no {name} column (a header named {wanted})")
    if problems:
        return None, problems
    claimed = set(fields.values())
    attributes = {headers[i].strip(): i for i in seen.values() if i not in claimed}
    return HeaderMap(fields=fields, attributes=attributes), []


def row_from_cells(header: HeaderMap, cells: Sequence[str]) -> dict[str, Any]:
    """Turn the cells of one CSV line into a raw product dict (empty attribute cells are left out)."""
    raw: dict[str, Any] = {name: cells[i] for name, i in header.fields.items() if i < len(cells)}
    attributes = {key: cells[i] for key, i in header.attributes.items() if i < len(cells) and cells[i] != ""}
    raw["attributes"] = attributes
    return raw


def _text(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and math.isfinite(value):
        return str(value)
    return None


def _number(value: Any) -> tuple[float | None, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, bool):
        return None, "must be a number"
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None, f"must be a number, not {value.strip()[:40]!r}"
    else:
        return None, "must be a number"
    if not math.isfinite(number):
        return None, "must be a finite number"
    return number, None


def _url(value: Any, name: str, errors: list[tuple[str, str]]) -> str:
    text = _text(value)
    if text is None:
        errors.append((name, "must be a string"))
        return ""
    if not text:
        return ""
    if len(text) > MAX_URL:
        errors.append((name, f"is longer than {MAX_URL} characters"))
        return ""
    parts = urlsplit(text)
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        errors.append((name, "must be an absolute http(s) URL"))
        return ""
    return text


def _bounded_text(value: Any, name: str, limit: int, errors: list[tuple[str, str]], *, required: bool) -> str:
    text = _text(value)
    if text is None:
        errors.append((name, "must be a string"))
        return ""
    if required and not text:
        errors.append((name, "is required"))
    elif len(text) > limit:
        errors.append((name, f"is longer than {limit} characters"))
    return text


def validate_product(raw: Mapping[str, Any], *, row: int) -> tuple[ProductFields | None, list[FieldError]]:
    """Check one product; returns the clean fields, or None and every problem of the row."""
    problems: list[tuple[str, str]] = []
    product_id = _bounded_text(raw.get("product_id"), "product_id", MAX_ID, problems, required=True)
    name = _bounded_text(raw.get("name"), "name", MAX_NAME, problems, required=True)
    category = _bounded_text(raw.get("category"), "category", MAX_CATEGORY, problems, required=False)
    price, why = _number(raw.get("price"))
    if why:
        problems.append(("price", why))
    elif price is not None and price < 0:
        problems.append(("price", "must not be negative"))
    currency = _text(raw.get("currency"))
    if currency is None:
        problems.append(("currency", "must be a string"))
        currency = DEFAULT_CURRENCY
    currency = currency.upper() or DEFAULT_CURRENCY
    if currency not in _CURRENCIES:
        problems.append(("currency", f"{currency[:10]!r} is not an ISO 4217 currency code"))
    url = _url(raw.get("url"), "url", problems)
    image_url = _url(raw.get("image_url"), "image_url", problems)
    stock_number, why = _number(raw.get("stock"))
    stock: int | None = None
    if why:
        problems.append(("stock", why.replace("a number", "a whole number")))
    elif stock_number is not None:
        if stock_number != int(stock_number):
            problems.append(("stock", "must be a whole number"))
        elif not 0 <= stock_number <= MAX_STOCK:
            problems.append(("stock", "must be between 0 and 2147483647"))
        else:
            stock = int(stock_number)
    attributes = raw.get("attributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        problems.append(("attributes", "must be an object"))
        attributes = {}
    elif len(json.dumps(attributes, default=str)) > MAX_ATTRIBUTES_BYTES:
        problems.append(("attributes", f"are larger than {MAX_ATTRIBUTES_BYTES} bytes as JSON"))
    if problems:
        return None, [FieldError(row, f, reason) for f, reason in problems]
    fields = ProductFields(
        product_id=product_id,
        name=name,
        category=category,
        price=price,
        currency=currency,
        url=url,
        image_url=image_url,
        stock=stock,
        attributes={str(k): v for k, v in attributes.items()},
    )
    return fields, []


def api_row(body: Mapping[str, Any]) -> dict[str, Any]:
    """Return a JSON product object with its known aliases resolved (``id``/``sku``, ``image``, …) and
    unknown keys moved into ``attributes``."""
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    keys = {normalise_header(str(k)): k for k in body}
    claimed: set[str] = set()
    for name, aliases in HEADER_ALIASES.items():
        for alias in aliases:
            if alias in keys:
                out[name] = body[keys[alias]]
                claimed.add(alias)
                break
    for norm, key in keys.items():
        if norm == "attributes" or norm in claimed:
            continue
        extra[str(key)] = body[key]
    given = body.get("attributes")
    if given is None or isinstance(given, dict):
        out["attributes"] = {**extra, **(given or {})}
    else:
        out["attributes"] = given
    return out
