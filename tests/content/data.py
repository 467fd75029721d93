"""Profiles, events and segments for the content tests, written through the ORM and the segment service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rapport.models import Event, Identity, Profile
from rapport.runtime import Runtime
from rapport.segments import service as segments_service
from rapport.segments.schemas import SegmentCreate

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)  # a Tuesday; 09:30 in London, 18:30 in Tokyo


def add_profile(
    runtime: Runtime,
    workspace_id: int,
    *,
    traits: dict[str, Any],
    timezone: str | None = "Europe/London",
    user_id: str | None = None,
    computed: dict[str, Any] | None = None,
) -> int:
    """Insert one live profile (email/phone/name copied from the traits) and return its id."""
    with runtime.sessions() as db:
        profile = Profile(
            workspace_id=workspace_id,
            traits=traits,
            computed=computed or {},
            email=traits.get("email"),
            phone=traits.get("phone"),
            name=" ".join(str(traits[k]) for k in ("first_name", "last_name") if k in traits) or None,
            timezone=timezone,
            created_at=NOW,
            updated_at=NOW,
        )
        db.add(profile)
        db.flush()
        for kind in ("email", "phone"):
            if traits.get(kind):
                db.add(
                    Identity(workspace_id=workspace_id, profile_id=profile.id, kind=kind, value=traits[kind])
                )
        if user_id:
            db.add(Identity(workspace_id=workspace_id, profile_id=profile.id, kind="user_id", value=user_id))
        db.commit()
        return profile.id


def add_event(
    runtime: Runtime, workspace_id: int, profile_id: int, name: str, at: datetime, **props: Any
) -> None:
    """Insert one processed track event of the profile."""
    with runtime.sessions() as db:
        db.add(
            Event(
                workspace_id=workspace_id,
                message_id=f"{name}-{profile_id}-{at.isoformat()}",
                type="track",
                event=name,
                profile_id=profile_id,
                timestamp=at,
                received_at=at,
                properties=props,
                state=1,
            )
        )
        db.commit()


def add_segment(runtime: Runtime, workspace_id: int, name: str, text: str) -> int:
    """Create a segment (its members materialised) and return its id."""
    with runtime.sessions() as db:
        segment = segments_service.create_segment(
            db, workspace_id=workspace_id, data=SegmentCreate(name=name, text=text), actor="test", now=NOW
        )
        db.commit()
        return segment.id
