"""Helpers shared by the ingest tests: SDK-style requests and reads of what was stored."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from sqlalchemy import func, select

from rapport.models import Event, QuarantinedEvent
from rapport.runtime import Runtime


def basic(key: str) -> dict[str, str]:
    """Authorization header exactly as Segment's SDKs send it: Basic, key as username, empty password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def gzipped(doc: Any) -> bytes:
    """Return ``doc`` as gzip-compressed JSON."""
    return gzip.compress(json.dumps(doc).encode())


def track(
    message_id: str, *, user: str = "u1", event: str = "Order Completed", **more: Any
) -> dict[str, Any]:
    """A minimal valid track message."""
    return {"type": "track", "messageId": message_id, "userId": user, "event": event, **more}


def events(runtime: Runtime, workspace_id: int) -> list[Event]:
    """Every stored event of the workspace, in id order."""
    with runtime.read_sessions() as db:
        return list(db.scalars(select(Event).where(Event.workspace_id == workspace_id).order_by(Event.id)))


def event_count(runtime: Runtime, workspace_id: int) -> int:
    """How many events the workspace has."""
    with runtime.read_sessions() as db:
        return int(
            db.scalar(select(func.count()).select_from(Event).where(Event.workspace_id == workspace_id)) or 0
        )


def quarantined(runtime: Runtime, workspace_id: int) -> list[QuarantinedEvent]:
    """Every quarantined event of the workspace, in id order."""
    with runtime.read_sessions() as db:
        stmt = select(QuarantinedEvent).where(QuarantinedEvent.workspace_id == workspace_id)
        return list(db.scalars(stmt.order_by(QuarantinedEvent.id)))
