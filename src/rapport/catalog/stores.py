"""A workspace's stores: the places the segment language measures distances to (``within 5 km of store
"Leeds Briggate"``) and templates show as the recipient's nearest (``{{ store.name }}``).

They live in the workspace's settings (``settings["stores"]``) and are replaced as a whole — by the API
(``PUT /api/v1/stores``) or the CLI (``rapport stores import FILE``, CSV or JSON) — after every row is
checked: a list with any bad row is refused with a reason per row and field, nothing half-applied.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from rapport.audit import service as audit_service
from rapport.catalog.validation import FieldError
from rapport.errors import NotFound, ValidationFailed
from rapport.models import Workspace

MAX_STORES = 5000
TEXT_FIELDS = ("id", "address", "city", "postcode", "phone", "url")
TIME_FIELDS = ("opens_at", "closes_at")
FIELDS = ("id", "name", "latitude", "longitude", *TEXT_FIELDS[1:], *TIME_FIELDS, "opening_hours")
MAX_TEXT = 400
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_ALIASES = {"lat": "latitude", "lon": "longitude", "lng": "longitude", "store_id": "id"}


def _number(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        return None
    return float(value)


def _check_row(row: int, raw: Any, errors: list[FieldError]) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        errors.append(FieldError(row, "", "a store is an object with name, latitude and longitude"))
        return None
    item = {_ALIASES.get(str(k), str(k)): v for k, v in raw.items() if v is not None and v != ""}
    unknown = sorted(set(item) - set(FIELDS))
    for key in unknown:
        errors.append(FieldError(row, key, f"unknown field (known: {', '.join(FIELDS)})"))
    store: dict[str, Any] = {}
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(FieldError(row, "name", "required"))
    elif len(name.strip()) > 200:
        errors.append(FieldError(row, "name", "at most 200 characters"))
    else:
        store["name"] = name.strip()
    for field, low, high in (("latitude", -90, 90), ("longitude", -180, 180)):
        number = _number(item.get(field))
        if number is None:
            errors.append(FieldError(row, field, "required, a number"))
        elif not low <= number <= high:
            errors.append(FieldError(row, field, f"between {low} and {high}"))
        else:
            store[field] = number
    for field in TEXT_FIELDS:
        if field in item:
            text = str(item[field]).strip()
            if len(text) > MAX_TEXT:
                errors.append(FieldError(row, field, f"at most {MAX_TEXT} characters"))
            else:
                store[field] = text
    for field in TIME_FIELDS:
        if field in item:
            if not isinstance(item[field], str) or not _HHMM.match(item[field].strip()):
                errors.append(FieldError(row, field, "a time of day as HH:MM"))
            else:
                store[field] = item[field].strip()
    hours = item.get("opening_hours")
    if hours is not None:
        if isinstance(hours, str):
            try:
                hours = json.loads(hours)
            except json.JSONDecodeError:
                hours = None
        if not isinstance(hours, Mapping) or not all(isinstance(v, str) for v in hours.values()):
            errors.append(FieldError(row, "opening_hours", 'an object of texts, e.g. {"mon": "09:00-17:30"}'))
        else:
            store["opening_hours"] = {str(k): v for k, v in hours.items()}
    return store


def validate_stores(
    items: Sequence[Any], *, first_row: int = 0
) -> tuple[list[dict[str, Any]], list[FieldError]]:
    """Return the stores cleaned (aliases ``lat``/``lon``/``lng``/``store_id`` renamed, numbers parsed)
    and every problem found; row numbers start at ``first_row`` (0 for an API list, 2 for a CSV)."""
    errors: list[FieldError] = []
    if len(items) > MAX_STORES:
        return [], [FieldError(first_row, "", f"at most {MAX_STORES} stores")]
    stores: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    ids: dict[str, int] = {}
    for offset, raw in enumerate(items):
        row = first_row + offset
        store = _check_row(row, raw, errors)
        if store is None:
            continue
        for key, seen in (("name", names), ("id", ids)):
            value = store.get(key)
            if value is None:
                continue
            folded = str(value).casefold()
            if folded in seen:
                errors.append(FieldError(row, key, f"the same {key} as row {seen[folded]}"))
            else:
                seen[folded] = row
        stores.append(store)
    return stores, errors


def read_file(text: str, *, kind: str) -> tuple[list[Any], int]:
    """Parse a stores file: ``csv`` (a header row; rows numbered from 2) or ``json`` (a list, or an object
    with ``stores``; rows numbered from 0). Returns the rows and the first row's number."""
    if kind == "csv":
        return list(csv.DictReader(io.StringIO(text))), 2
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValidationFailed(f"not JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
    if isinstance(data, Mapping):
        data = data.get("stores")
    if not isinstance(data, list):
        raise ValidationFailed('a JSON list of stores, or {"stores": [...]}')
    return data, 0


def list_stores(db: Session, *, workspace_id: int) -> list[dict[str, Any]]:
    """Return the workspace's stores as stored."""
    workspace = db.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("workspace not found")
    return [dict(s) for s in (workspace.settings or {}).get("stores") or [] if isinstance(s, Mapping)]


def replace_stores(
    db: Session,
    *,
    workspace_id: int,
    items: Sequence[Any],
    actor: str,
    first_row: int = 0,
    allow_empty: bool = False,
    guard: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Replace the workspace's stores with ``items`` when every row is valid (else ValidationFailed with
    ``details: [{row, field, reason}]`` and nothing changed); audited with the counts before and after.

    An empty list removes every store, so it is refused unless ``allow_empty`` (an empty or header-only
    upload is a mistake far more often than a wish). ``guard`` sees the valid new list before anything is
    written and may refuse it (the edges pass ``segments.store_use.check_stores_kept``)."""
    stores, errors = validate_stores(items, first_row=first_row)
    if errors:
        first = errors[0]
        where = f"row {first.row}" + (f", {first.field}" if first.field else "")
        raise ValidationFailed(
            f"{len(errors)} problem(s); {where}: {first.reason}", details=[e.to_dict() for e in errors]
        )
    if not stores and not allow_empty:
        raise ValidationFailed("the list has no stores; nothing was changed", code="no_stores")
    if guard is not None:
        guard(stores)
    workspace = db.get(Workspace, workspace_id, with_for_update=True)
    if workspace is None:
        raise NotFound("workspace not found")
    settings = dict(workspace.settings or {})
    before = len(settings.get("stores") or [])
    settings["stores"] = stores
    workspace.settings = settings
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="stores.replace",
        target_type="workspace",
        target_id=workspace_id,
        details={"before": before, "after": len(stores), "names": [s["name"] for s in stores[:20]]},
    )
    return stores
