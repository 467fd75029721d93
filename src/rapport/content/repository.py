"""Every query of the content domain: templates, snippets, and the facts a block condition reads."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from rapport.models import (
    Event,
    MessageTemplate,
    Profile,
    Segment,
    SegmentMember,
    Snippet,
    Subscription,
    Workspace,
)

#: A recipient's events read for one condition name, newest first (conditions over more are approximate).
MAX_EVENTS_PER_NAME = 2000


def get_template(db: Session, *, workspace_id: int, template_id: int) -> MessageTemplate | None:
    """Return one template of the workspace."""
    return db.scalar(
        select(MessageTemplate).where(
            MessageTemplate.workspace_id == workspace_id, MessageTemplate.id == template_id
        )
    )


def template_by_name(db: Session, *, workspace_id: int, name: str) -> MessageTemplate | None:
    """Return the template called ``name`` (archived ones too: names are unique per workspace)."""
    return db.scalar(
        select(MessageTemplate).where(
            MessageTemplate.workspace_id == workspace_id, MessageTemplate.name == name
        )
    )


def list_templates(
    db: Session,
    *,
    workspace_id: int,
    channel: str | None,
    include_archived: bool,
    q: str | None,
    limit: int,
    offset: int,
) -> Sequence[MessageTemplate]:
    """Return a page of the workspace's templates, most recently changed first."""
    stmt = select(MessageTemplate).where(MessageTemplate.workspace_id == workspace_id)
    if channel:
        stmt = stmt.where(MessageTemplate.channel == channel)
    if not include_archived:
        stmt = stmt.where(MessageTemplate.archived_at.is_(None))
    if q:
        stmt = stmt.where(func.lower(MessageTemplate.name).contains(q.lower(), autoescape=True))
    stmt = stmt.order_by(MessageTemplate.updated_at.desc(), MessageTemplate.id.desc())
    return db.scalars(stmt.limit(limit).offset(offset)).all()


def active_templates(db: Session, *, workspace_id: int) -> Sequence[MessageTemplate]:
    """Return every template not archived (to find which use a snippet)."""
    return db.scalars(
        select(MessageTemplate).where(
            MessageTemplate.workspace_id == workspace_id, MessageTemplate.archived_at.is_(None)
        )
    ).all()


def get_snippet(db: Session, *, workspace_id: int, snippet_id: int) -> Snippet | None:
    """Return one snippet of the workspace."""
    return db.scalar(select(Snippet).where(Snippet.workspace_id == workspace_id, Snippet.id == snippet_id))


def snippet_by_name(db: Session, *, workspace_id: int, name: str) -> Snippet | None:
    """Return the snippet called ``name``."""
    return db.scalar(select(Snippet).where(Snippet.workspace_id == workspace_id, Snippet.name == name))


def list_snippets(db: Session, *, workspace_id: int, limit: int, offset: int) -> Sequence[Snippet]:
    """Return a page of the workspace's snippets by name."""
    stmt = select(Snippet).where(Snippet.workspace_id == workspace_id).order_by(Snippet.name, Snippet.id)
    return db.scalars(stmt.limit(limit).offset(offset)).all()


def snippet_sources(db: Session, *, workspace_id: int, limit: int) -> dict[str, str]:
    """Return ``{name: source}`` of the workspace's snippets (at most ``limit`` of them)."""
    rows = db.execute(
        select(Snippet.name, Snippet.source)
        .where(Snippet.workspace_id == workspace_id)
        .order_by(Snippet.name)
        .limit(limit)
    )
    return {name: source for name, source in rows}


def live_profile(db: Session, *, workspace_id: int, profile_id: int) -> Profile | None:
    """Return the live profile ``profile_id`` (not merged away)."""
    return db.scalar(
        select(Profile).where(
            Profile.workspace_id == workspace_id, Profile.id == profile_id, Profile.merged_into_id.is_(None)
        )
    )


def events_of(
    db: Session, *, workspace_id: int, profile_id: int, names: Collection[str]
) -> list[tuple[str, Any, dict[str, Any]]]:
    """Return ``(name, timestamp, properties)`` of the profile's events with one of ``names``."""
    found: list[tuple[str, Any, dict[str, Any]]] = []
    for name in sorted(names):
        rows = db.execute(
            select(Event.event, Event.timestamp, Event.properties)
            .where(Event.workspace_id == workspace_id, Event.profile_id == profile_id, Event.event == name)
            .order_by(Event.timestamp.desc())
            .limit(MAX_EVENTS_PER_NAME)
        )
        found.extend((str(event), timestamp, dict(properties or {})) for event, timestamp, properties in rows)
    return found


def subscriptions_of(db: Session, *, workspace_id: int, profile_id: int) -> dict[tuple[str, str | None], str]:
    """Return the profile's consent states by ``(channel, topic)`` (topic None for the channel itself)."""
    rows = db.execute(
        select(Subscription.channel, Subscription.topic, Subscription.state).where(
            Subscription.workspace_id == workspace_id, Subscription.profile_id == profile_id
        )
    )
    return {(channel, topic or None): state for channel, topic, state in rows}


def segment_names_of(db: Session, *, workspace_id: int, profile_id: int) -> set[str]:
    """Return the names of the active segments the profile is a member of."""
    rows = db.scalars(
        select(Segment.name)
        .join(SegmentMember, SegmentMember.segment_id == Segment.id)
        .where(
            Segment.workspace_id == workspace_id,
            Segment.archived_at.is_(None),
            SegmentMember.profile_id == profile_id,
        )
    )
    return set(rows)


def segment_names_for(db: Session, *, workspace_id: int, profile_ids: Sequence[int]) -> dict[int, set[str]]:
    """Return the active segments' names of each profile (every id present, possibly with none)."""
    found: dict[int, set[str]] = {pid: set() for pid in profile_ids}
    ids = sorted(found)
    for start in range(0, len(ids), 500):
        rows = db.execute(
            select(SegmentMember.profile_id, Segment.name)
            .join(Segment, SegmentMember.segment_id == Segment.id)
            .where(
                Segment.workspace_id == workspace_id,
                Segment.archived_at.is_(None),
                SegmentMember.profile_id.in_(ids[start : start + 500]),
            )
        )
        for pid, name in rows:
            found[pid].add(name)
    return found


def random_members(db: Session, *, segment_id: int, limit: int) -> list[int]:
    """Return up to ``limit`` member profile ids of a segment, chosen at random."""
    return list(
        db.scalars(
            select(SegmentMember.profile_id)
            .where(SegmentMember.segment_id == segment_id)
            .order_by(func.random())
            .limit(limit)
        )
    )


def find_profiles(db: Session, *, workspace_id: int, q: str, limit: int) -> Sequence[Profile]:
    """Return live profiles whose email, phone or name starts with ``q`` (the preview's customer picker)."""
    like = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = select(Profile).where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
    if q:
        conditions: list[ColumnElement[bool]] = [
            func.lower(Profile.email).like(like, escape="\\"),
            Profile.phone.like(like, escape="\\"),
            func.lower(Profile.name).like(like, escape="\\"),
        ]
        if q.isdigit():
            conditions.append(Profile.id == int(q))
        stmt = stmt.where(or_(*conditions))
    return db.scalars(stmt.order_by(Profile.id.desc()).limit(limit)).all()


def workspace_defaults(db: Session, *, workspace_id: int) -> tuple[str, dict[str, Any]]:
    """Return the workspace's timezone and settings."""
    row = db.execute(
        select(Workspace.timezone, Workspace.settings).where(Workspace.id == workspace_id)
    ).first()
    if row is None:
        return "UTC", {}
    return str(row.timezone or "UTC"), dict(row.settings or {})
