"""The nearest store of a recipient, for ``{{ store.* }}`` in templates (pure; no I/O).

Stores are the workspace's (``settings["stores"]``, the same list the segment language's ``within 5 km of
store "…"`` reads): each a mapping with a ``name`` and a position (``latitude``/``longitude``, or
``lat``/``lon``), and any of ``id``, ``address``, ``city``, ``postcode``, ``phone``, ``url``, ``opens_at``,
``closes_at``, ``opening_hours``. A recipient is placed by the ``latitude``/``longitude`` traits of the
profile; without them (or without stores) there is no nearest store and ``store`` is absent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rapport.personalize.context import STORE_FIELDS
from rapport.segments.evaluator import distance_km


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def position(item: Mapping[str, Any]) -> tuple[float, float] | None:
    """Return the (latitude, longitude) of a store or a profile's traits, when both are valid numbers."""
    lat = _number(item.get("latitude", item.get("lat")))
    lon = _number(item.get("longitude", item.get("lon")))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def placed_stores(settings: Mapping[str, Any] | None) -> list[tuple[tuple[float, float], Mapping[str, Any]]]:
    """Return the workspace's stores that have a name and a position, with that position."""
    found: list[tuple[tuple[float, float], Mapping[str, Any]]] = []
    for store in (settings or {}).get("stores") or []:
        if not isinstance(store, Mapping) or not isinstance(store.get("name"), str):
            continue
        where = position(store)
        if where is not None:
            found.append((where, store))
    return found


def nearest_store(
    stores: Sequence[tuple[tuple[float, float], Mapping[str, Any]]], traits: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Return the store nearest the profile (its fields, ``distance_km`` rounded to 0.1 km), or None when
    the profile has no position or there are no stores; ties go to the store listed first."""
    here = position(traits)
    if here is None or not stores:
        return None
    best_km, best = min(
        ((distance_km(here, where), store) for where, store in stores), key=lambda pair: pair[0]
    )
    found: dict[str, Any] = {name: best[name] for name in STORE_FIELDS if name in best}
    found["latitude"], found["longitude"] = position(best) or (None, None)
    found["distance_km"] = round(best_km, 1)
    hours = best.get("opening_hours")
    if isinstance(hours, Mapping):
        found["opening_hours"] = dict(hours)
    return found
