"""Delivery feedback as events on the profile's timeline (``email_sent``, ``sms_delivered``, …)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.messaging import repository as repo
from rapport.models import Event, Message
from rapport.models.event import PROCESSED

_EVENTS = cast(Table, Event.__table__)


def event_name(channel: str, action: str) -> str:
    """Return the event name of a feedback action, e.g. ``email_opened``."""
    return f"{channel}_{action}"


class Subject(Protocol):
    """What a feedback event needs of its message (an outbox row, or a lighter stand-in)."""

    @property
    def workspace_id(self) -> int: ...
    @property
    def profile_id(self) -> int: ...
    @property
    def message_id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def campaign_id(self) -> int | None: ...
    @property
    def variant(self) -> str | None: ...
    @property
    def topic(self) -> str: ...
    @property
    def kind(self) -> str: ...


_BULK_COLUMNS = (
    "workspace_id",
    "message_id",
    "type",
    "event",
    "profile_id",
    "channel",
    "timestamp",
    "received_at",
    "properties",
    "traits",
    "context",
    "extra",
    "source",
    "state",
)


def record_many(
    db: Session,
    items: Iterable[tuple[Subject, str, dict[str, Any] | None]],
    *,
    at: datetime,
    now: datetime,
) -> int:
    """Append feedback events for many (message, action, extra) in a few multi-row INSERTs, each
    deduplicated like :func:`record` (one per message and action); returns how many rows were offered."""
    values = repo.BulkValues(db)
    stamp, received = values.time(at), values.time(now)
    empty = values.json({})
    rows: list[Sequence[Any]] = []
    for message, action, extra in items:
        properties: dict[str, Any] = {"message_id": message.message_id, "channel": message.channel}
        if message.campaign_id is not None:
            properties["campaign_id"] = message.campaign_id
        if message.variant is not None:
            properties["variant"] = message.variant
        if message.topic:
            properties["topic"] = message.topic
        properties["kind"] = message.kind
        if extra:
            properties.update({k: v for k, v in extra.items() if v is not None})
        rows.append(
            (
                message.workspace_id,
                f"fb:{message.message_id}:{action}",
                "track",
                event_name(message.channel, action),
                message.profile_id,
                message.channel,
                stamp,
                received,
                values.json(properties),
                empty,
                empty,
                empty,
                "rapport",
                PROCESSED,
            )
        )
    repo.insert_rows(
        db,
        _EVENTS,
        _BULK_COLUMNS,
        rows,
        conflict="ON CONFLICT (workspace_id, message_id) DO NOTHING",
    )
    return len(rows)


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
