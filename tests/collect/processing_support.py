"""Helpers for processor, import and profile tests: append pending events, process them, read profiles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from rapport.collect import normalize as norm
from rapport.collect.processor import Processor
from rapport.models import Event, Identity, Profile, ProfileMerge, TraitChange, Workspace
from rapport.runtime import Runtime

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def append(runtime: Runtime, workspace_id: int, *messages: dict[str, Any]) -> list[int]:
    """Append messages to the log as PENDING events, the way the ingest path stores them."""
    ids = []
    with runtime.sessions() as db:
        for message in messages:
            result = norm.normalize(message, received_at=runtime.clock.now())
            assert isinstance(result, norm.Normalized), result
            event = Event(workspace_id=workspace_id, **result.row)
            db.add(event)
            db.flush()
            ids.append(event.id)
        db.commit()
    return ids


def process(runtime: Runtime) -> int:
    """Apply every pending event."""
    return Processor(runtime, batch_size=50).drain()


def at(minutes: int) -> str:
    """An ISO timestamp ``minutes`` after T0."""
    return datetime.fromtimestamp(T0.timestamp() + 60 * minutes, UTC).isoformat()


def live_profiles(runtime: Runtime, workspace_id: int) -> list[Profile]:
    """The workspace's live (not merged-away) profiles, by id."""
    with runtime.read_sessions() as db:
        stmt = select(Profile).where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
        return list(db.scalars(stmt.order_by(Profile.id)))


def all_profiles(runtime: Runtime, workspace_id: int) -> list[Profile]:
    """Every profile row of the workspace, tombstones included."""
    with runtime.read_sessions() as db:
        return list(
            db.scalars(select(Profile).where(Profile.workspace_id == workspace_id).order_by(Profile.id))
        )


def identities(runtime: Runtime, workspace_id: int) -> dict[tuple[str, str], int]:
    """(kind, value) → profile id."""
    with runtime.read_sessions() as db:
        rows = db.execute(
            select(Identity.kind, Identity.value, Identity.profile_id).where(
                Identity.workspace_id == workspace_id
            )
        )
        return {(k, v): p for k, v, p in rows}


def events(runtime: Runtime, workspace_id: int) -> list[Event]:
    """Every event of the workspace in id order."""
    with runtime.read_sessions() as db:
        return list(db.scalars(select(Event).where(Event.workspace_id == workspace_id).order_by(Event.id)))


def merges(runtime: Runtime, workspace_id: int) -> list[ProfileMerge]:
    """Every recorded merge of the workspace."""
    with runtime.read_sessions() as db:
        stmt = select(ProfileMerge).where(ProfileMerge.workspace_id == workspace_id).order_by(ProfileMerge.id)
        return list(db.scalars(stmt))


def history(runtime: Runtime, profile_id: int, name: str) -> list[TraitChange]:
    """The changes of one trait of one profile, oldest first."""
    with runtime.read_sessions() as db:
        stmt = select(TraitChange).where(TraitChange.profile_id == profile_id, TraitChange.name == name)
        return list(db.scalars(stmt.order_by(TraitChange.id)))


def set_identity_rules(runtime: Runtime, workspace_id: int, rules: dict[str, Any]) -> None:
    """Store identity rules in the workspace settings."""
    with runtime.sessions() as db:
        ws = db.get(Workspace, workspace_id)
        assert ws is not None
        ws.settings = {**(ws.settings or {}), "identity": rules}
        db.commit()
