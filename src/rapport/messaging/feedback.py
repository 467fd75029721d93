"""Delivery feedback as events on the profile's timeline (``email_sent``, ``sms_delivered``, …)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.models import Event, Message
from rapport.models.event import PROCESSED

_EVENTS = cast(Table, Event.__table__)


def event_name(channel: str, action: str) -> str:
    """Return the event name of a feedback action, e.g. ``email_opened``."""
    return f"{channel}_{action}"


def record(
    db: Session,
    message: Message,
    action: str,
    *,
    at: datetime,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> None:
    """Append one feedback event for ``message`` (deduplicated: one per message and action)."""
    properties: dict[str, Any] = {
        "message_id": message.message_id,
        "channel": message.channel,
        "campaign_id": message.campaign_id,
        "variant": message.variant,
        "topic": message.topic or None,
        "kind": message.kind,
    }
    properties.update(extra or {})
    values = {
        "workspace_id": message.workspace_id,
        "message_id": f"fb:{message.message_id}:{action}",
        "type": "track",
        "event": event_name(message.channel, action),
        "profile_id": message.profile_id,
        "channel": message.channel,
        "timestamp": at,
        "received_at": now,
        "properties": {k: v for k, v in properties.items() if v is not None},
        "traits": {},
        "context": {},
        "extra": {},
        "source": "rapport",
        "state": PROCESSED,
    }
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    db.execute(
        insert(_EVENTS).values(**values).on_conflict_do_nothing(index_elements=["workspace_id", "message_id"])
    )
