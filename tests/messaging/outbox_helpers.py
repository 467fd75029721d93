"""Small helpers shared by the delivery-feedback tests: queue a message, read events, set workspace settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from rapport.messaging import service as messaging_service
from rapport.models import Event, Message, Workspace
from rapport.runtime import Runtime
from tests.support.tenants import Tenant

# 11:00 UTC on a weekday: inside every default quiet-hours window.
NOON = datetime(2026, 11, 18, 11, 0, tzinfo=UTC)


def queue(
    runtime: Runtime,
    tenant: Tenant,
    profile_id: int,
    key: str,
    *,
    kind: str = "marketing",
    channel: str = "email",
    content: dict[str, Any] | None = None,
    campaign_id: int | None = None,
) -> Message:
    """Write one outbox row and commit; returns it."""
    with runtime.sessions() as db:
        message = messaging_service.enqueue(
            db,
            workspace_id=tenant.workspace_id,
            profile_id=profile_id,
            channel=channel,
            kind=kind,
            content=content or {"subject": "Hello", "html": "<p>Hi {{ profile.first_name }}</p>"},
            dedupe_key=key,
            now=runtime.clock.now(),
            campaign_id=campaign_id,
        )
        assert message is not None
        db.commit()
        db.expunge(message)
        return message


def events(runtime: Runtime, profile_id: int, name: str) -> list[Event]:
    """Return a profile's events called ``name``, oldest first."""
    with runtime.read_sessions() as db:
        found = list(
            db.scalars(
                select(Event).where(Event.profile_id == profile_id, Event.event == name).order_by(Event.id)
            ).all()
        )
        for event in found:
            db.expunge(event)
        return found


def message(runtime: Runtime, message_id: str) -> Message:
    """Return an outbox row by its provider-facing id."""
    with runtime.read_sessions() as db:
        row = db.scalar(select(Message).where(Message.message_id == message_id))
        assert row is not None
        db.expunge(row)
        return row


def set_workspace_settings(runtime: Runtime, tenant: Tenant, **values: Any) -> None:
    """Merge ``values`` into the workspace settings."""
    with runtime.sessions() as db:
        workspace = db.get(Workspace, tenant.workspace_id)
        assert workspace is not None
        workspace.settings = {**(workspace.settings or {}), **values}
        db.commit()
