"""A profile's timezone and where it came from: trait, event context, location or phone number.

Precedence (highest first): an explicit ``timezone`` trait (source ``trait``), the latest event's
``context.timezone`` (``context``; both set by identity resolution as events are applied), the profile's
location (``location``: the nearest city of :data:`CITIES` to the latitude/longitude of the traits or of the
latest event's ``context.location``), the phone number (``phone``: phonenumbers' prefix data; when a
prefix spans several zones the workspace's own zone wins if it is one of them, else the first).

The location rule is an approximation: there is no timezone-boundary data here, so a point near a border
may get the neighbour's zone; the table favours capitals and large cities of each zone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones
from sqlalchemy import bindparam, select, update

from rapport.collect.processor import BatchApplied
from rapport.db.planner import one_of, same_workspace
from rapport.kit.clock import as_utc
from rapport.models import Event, Profile, Workspace

SOURCES: tuple[str, ...] = ("trait", "context", "location", "phone")
#: (latitude, longitude, IANA zone) of large cities; nearest wins.
CITIES: tuple[tuple[float, float, str], ...] = (
    (51.507, -0.128, "Europe/London"),
    (53.480, -2.243, "Europe/London"),
    (55.953, -3.188, "Europe/London"),
    (54.597, -5.930, "Europe/London"),
    (53.350, -6.260, "Europe/Dublin"),
    (48.857, 2.352, "Europe/Paris"),
    (52.520, 13.405, "Europe/Berlin"),
    (52.370, 4.895, "Europe/Amsterdam"),
    (50.850, 4.352, "Europe/Brussels"),
    (40.417, -3.704, "Europe/Madrid"),
    (38.722, -9.139, "Europe/Lisbon"),
    (41.903, 12.496, "Europe/Rome"),
    (47.377, 8.541, "Europe/Zurich"),
    (48.208, 16.373, "Europe/Vienna"),
    (59.329, 18.069, "Europe/Stockholm"),
    (59.913, 10.752, "Europe/Oslo"),
    (55.676, 12.568, "Europe/Copenhagen"),
    (60.170, 24.938, "Europe/Helsinki"),
    (52.230, 21.012, "Europe/Warsaw"),
    (37.984, 23.728, "Europe/Athens"),
    (41.008, 28.978, "Europe/Istanbul"),
    (55.756, 37.617, "Europe/Moscow"),
    (25.205, 55.271, "Asia/Dubai"),
    (19.076, 72.878, "Asia/Kolkata"),
    (28.614, 77.209, "Asia/Kolkata"),
    (1.352, 103.820, "Asia/Singapore"),
    (22.320, 114.169, "Asia/Hong_Kong"),
    (31.230, 121.474, "Asia/Shanghai"),
    (35.677, 139.650, "Asia/Tokyo"),
    (37.567, 126.978, "Asia/Seoul"),
    (-33.869, 151.209, "Australia/Sydney"),
    (-37.814, 144.963, "Australia/Melbourne"),
    (-31.950, 115.860, "Australia/Perth"),
    (-36.848, 174.763, "Pacific/Auckland"),
    (40.713, -74.006, "America/New_York"),
    (41.878, -87.630, "America/Chicago"),
    (39.739, -104.990, "America/Denver"),
    (34.052, -118.244, "America/Los_Angeles"),
    (47.606, -122.332, "America/Los_Angeles"),
    (43.653, -79.383, "America/Toronto"),
    (49.283, -123.121, "America/Vancouver"),
    (19.433, -99.133, "America/Mexico_City"),
    (-23.551, -46.633, "America/Sao_Paulo"),
    (-34.604, -58.382, "America/Argentina/Buenos_Aires"),
    (-33.925, 18.424, "Africa/Johannesburg"),
    (-26.204, 28.047, "Africa/Johannesburg"),
    (6.524, 3.379, "Africa/Lagos"),
    (30.044, 31.236, "Africa/Cairo"),
    (-1.292, 36.822, "Africa/Nairobi"),
)


def valid_zone(name: Any) -> str | None:
    """Return ``name`` when it is a known IANA zone, else None."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def zone_for_location(latitude: float, longitude: float) -> str:
    """Return the zone of the nearest city in :data:`CITIES` (great-circle distance)."""

    def distance(city: tuple[float, float, str]) -> float:
        lat1, lon1, lat2, lon2 = map(math.radians, (latitude, longitude, city[0], city[1]))
        a = (
            math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        )
        return 2 * math.asin(min(1.0, math.sqrt(a)))

    return min(CITIES, key=distance)[2]


def zone_for_phone(phone: str, *, preferred: str | None = None) -> str | None:
    """Return the zone of an E.164 phone number (None when unknown)."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_zones.time_zones_for_number(number) if valid_zone(z)]
    if not zones:
        return None
    return preferred if preferred in zones else zones[0]


def _coordinates(bag: Any) -> tuple[float, float] | None:
    if not isinstance(bag, Mapping):
        return None
    lat, lon = bag.get("latitude"), bag.get("longitude")
    for value in (lat, lon):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return None
    try:
        flat, flon = float(lat), float(lon)  # type: ignore[arg-type]
    except ValueError:
        return None
    if not (-90 <= flat <= 90 and -180 <= flon <= 180) or (flat == 0 and flon == 0):
        return None
    return flat, flon


def resolve_zone(
    *,
    traits: Mapping[str, Any],
    context_timezone: str | None,
    context_location: Any,
    phone: str | None,
    preferred: str | None = None,
) -> tuple[str, str] | None:
    """Return (zone, source) by the documented precedence, or None when nothing tells."""
    if zone := valid_zone(traits.get("timezone")):
        return zone, "trait"
    if zone := valid_zone(context_timezone):
        return zone, "context"
    where = _coordinates(traits) or _coordinates(traits.get("location")) or _coordinates(context_location)
    if where is not None:
        return zone_for_location(*where), "location"
    if phone and (zone := zone_for_phone(phone, preferred=preferred)):
        return zone, "phone"
    return None


_P = Profile.__table__.c
_ZONE_FACTS = select(_P.id, _P.traits, _P.phone, _P.timezone, _P.timezone_source).where(
    same_workspace(_P.workspace_id, bindparam("ws")), one_of(_P.id, "ids")
)


def _batch_contexts(batch: BatchApplied) -> list[tuple[int | None, Any]]:
    """(profile id, context) of the batch's events in (timestamp, id) order: from the rows the processor
    applied when it hands them over, else read back."""
    if batch.linked is not None:
        ordered = sorted(batch.linked, key=lambda linked: (as_utc(linked[0].timestamp), linked[0].id))
        return [(pid, row.context) for row, pid in ordered]
    out: list[tuple[int | None, Any]] = []
    for i in range(0, len(batch.event_ids), 500):
        out.extend(
            (ev.profile_id, ev.context)
            for ev in batch.db.execute(
                select(Event.profile_id, Event.context, Event.timestamp, Event.id)
                .where(Event.workspace_id == batch.workspace_id, Event.id.in_(batch.event_ids[i : i + 500]))
                .order_by(Event.timestamp, Event.id)
            )
        )
    return out


def apply_batch(batch: BatchApplied) -> None:
    """After-apply hook: (re)derive the timezone of the batch's profiles whose zone is not explicit."""
    if not batch.profile_ids:
        return
    db = batch.db
    ws = batch.workspace_id
    ids = sorted(batch.profile_ids)
    rows: list[Any] = []
    if batch.profile_facts is not None and set(ids) <= set(batch.profile_facts):
        rows = [batch.profile_facts[pid] for pid in ids]  # as the resolution left them: no read back
    else:
        conn = db.connection()
        for i in range(0, len(ids), 500):
            rows.extend(conn.execute(_ZONE_FACTS, {"ws": ws, "ids": ids[i : i + 500]}).all())
    candidates = [
        r for r in rows if r.timezone_source in (None, "location", "phone") or not valid_zone(r.timezone)
    ]
    if not candidates:
        return
    latest: dict[int, tuple[Any, Any]] = {}
    wanted = {r.id for r in candidates}
    for profile_id, context in _batch_contexts(batch):
        if profile_id is not None and profile_id in wanted and isinstance(context, dict):
            tz, loc = context.get("timezone"), context.get("location")
            old = latest.get(profile_id, (None, None))
            latest[profile_id] = (tz or old[0], loc if _coordinates(loc) else old[1])
    # the workspace's zone only breaks a phone prefix's tie: not read for batches without phones
    preferred = (
        db.scalar(select(Workspace.timezone).where(Workspace.id == ws))
        if any(r.phone for r in candidates)
        else None
    )
    changes = []
    for r in candidates:
        tz, loc = latest.get(r.id, (None, None))
        found = resolve_zone(
            traits=r.traits or {},
            context_timezone=tz,
            context_location=loc,
            phone=r.phone,
            preferred=preferred,
        )
        if found is None:
            if r.timezone is not None and not valid_zone(r.timezone):
                changes.append({"b_id": r.id, "b_tz": None, "b_src": None})
            continue
        if (r.timezone, r.timezone_source) != found:
            changes.append({"b_id": r.id, "b_tz": found[0], "b_src": found[1]})
    if changes:
        table = Profile.__table__
        db.execute(
            update(table)  # type: ignore[arg-type]
            .where(table.c.id == bindparam("b_id"))
            .values(timezone=bindparam("b_tz"), timezone_source=bindparam("b_src")),
            changes,
        )
