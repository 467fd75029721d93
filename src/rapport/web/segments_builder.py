"""What the segment builder page needs besides the segments service: the catalogue as the browser sees it,
errors placed on the visual row they belong to, and the entries and exits of the last days per segment.

The segments domain is used only through its public modules (service, codec, catalog_service and the
package's ``check``); the one query here reads the ``segment_entered`` / ``segment_exited`` events the
real-time engine appends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rapport.models import Event
from rapport.segments import Catalog, SegmentError, check
from rapport.segments.codec import decode

#: Operators a field of each type offers in the visual editor (the parser's own table, plus is set).
FIELD_OPERATORS: Mapping[str, tuple[str, ...]] = {
    "string": ("=", "!=", "contains", "starts with", "in", "not in", ">", ">=", "<", "<="),
    "number": ("=", "!=", ">", ">=", "<", "<=", "in", "not in"),
    "boolean": ("=", "!="),
    "date": ("=", "!=", ">", ">=", "<", "<=", "in", "not in"),
    "list": ("contains", "in", "not in"),
}
CHANNELS = ("email", "sms", "push", "inapp", "webhook")
ACTIONS = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed")
RECENT_DAYS = 7


def catalog_for_browser(catalog: Catalog) -> dict[str, Any]:
    """Return what the visual editor offers: fields with types, events, verbs, stores, segments, topics."""
    fields: list[dict[str, str]] = []
    for source, table in (
        ("trait", catalog.traits or {}),
        ("computed", catalog.computed),
        ("score", catalog.scores),
    ):
        fields.extend({"name": name, "type": kind, "source": source} for name, kind in sorted(table.items()))
    return {
        "fields": fields,
        "checks_fields": catalog.checks_fields(),
        "events": sorted(catalog.events or ()),
        "verbs": dict(catalog.event_aliases),
        "stores": sorted(catalog.stores or {}),
        "segments": sorted(catalog.segments or ()),
        "topics": sorted(catalog.topics or ()),
        "campaigns": sorted(catalog.campaigns or ()),
        "annual_dates": sorted(catalog.annual_dates),
        "operators": dict(FIELD_OPERATORS),
        "channels": list(CHANNELS),
        "actions": list(ACTIONS),
    }


def error_payload(error: SegmentError, *, path: str | None = None) -> dict[str, Any]:
    """Return a segment error as the builder shows it: message, position, JSON path, suggestion."""
    return {
        "message": error.message,
        "reason": error.reason,
        "line": error.line,
        "column": error.column,
        "path": path or error.path,
        "expected": list(error.expected),
        "suggestion": error.suggestion,
    }


def locate_in_document(document: object, catalog: Catalog) -> str | None:
    """Return the JSON path of the first condition of ``document`` that ``catalog`` refuses, or None.

    The catalogue check of a decoded tree names no position, so each leaf condition is checked on its own
    to find the visual row the message belongs under.
    """
    if not isinstance(document, Mapping):
        return None
    return _first_refused(document.get("root"), "root", catalog)


def _first_refused(node: object, path: str, catalog: Catalog) -> str | None:
    if not isinstance(node, Mapping):
        return None
    kind = node.get("type")
    if kind in ("and", "or"):
        items = node.get("items")
        if isinstance(items, Sequence):
            for index, item in enumerate(items):
                found = _first_refused(item, f"{path}.items[{index}]", catalog)
                if found is not None:
                    return found
        return None
    if kind == "not":
        return _first_refused(node.get("item"), f"{path}.item", catalog)
    try:
        check(decode(node, path), catalog)
    except SegmentError:
        return path
    return None


@dataclass(frozen=True, slots=True)
class Movement:
    """Entries into and exits out of one segment over the recent days."""

    entered: int = 0
    exited: int = 0


def recent_movements(
    db: Session, *, workspace_id: int, now: datetime, days: int = RECENT_DAYS
) -> dict[int, Movement]:
    """Count the ``segment_entered`` / ``segment_exited`` events of the last ``days`` days per segment id."""
    segment_id = Event.properties["segment_id"].as_integer()
    rows = db.execute(
        select(segment_id, Event.event, func.count())
        .where(
            Event.workspace_id == workspace_id,
            Event.event.in_(("segment_entered", "segment_exited")),
            Event.timestamp > now - timedelta(days=days),
            Event.profile_id.is_not(None),
        )
        .group_by(segment_id, Event.event)
    )
    found: dict[int, Movement] = {}
    for sid, event, count in rows:
        if sid is None:
            continue
        seen = found.get(int(sid), Movement())
        if event == "segment_entered":
            seen = Movement(entered=int(count), exited=seen.exited)
        else:
            seen = Movement(entered=seen.entered, exited=int(count))
        found[int(sid)] = seen
    return found
