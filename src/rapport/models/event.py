"""The event log (the source of truth), quarantined events and the processing state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, SmallInteger, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, IdMixin, Json, UTCDateTime, WorkspaceScoped
from rapport.kit.clock import utcnow

#: Event.state values.
PENDING = 0
PROCESSED = 1


class Event(IdMixin, WorkspaceScoped, Base):
    """One accepted message of the Segment spec (track, identify, page, screen, group, alias).

    ``message_id`` dedupes per workspace (R1). ``timestamp`` is the event time corrected for client clock
    skew. ``state`` is PENDING until the processor has resolved the profile and applied the event; the
    partial index on pending rows makes finding work cheap whatever the size of the log.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "message_id"),
        # read for given profiles only; unlinked events (just ingested) are not in it (migration 0012)
        Index(
            "ix_events_profile_time",
            "profile_id",
            "timestamp",
            sqlite_where=text("profile_id IS NOT NULL"),
            postgresql_where=text("profile_id IS NOT NULL"),
        ),
        # counts and lists by name and time, of linked events only (migration 0013)
        Index(
            "ix_events_workspace_name_time",
            "workspace_id",
            "event",
            "timestamp",
            "profile_id",
            sqlite_where=text("profile_id IS NOT NULL"),
            postgresql_where=text("profile_id IS NOT NULL"),
        ),
        # Segment reads (rapport.segments.indexes): linked events carrying a string ``category`` by its
        # value (unlinked ones are not indexed: ingest does not pay for it, migration 0012).
        # PostgreSQL's form; SQLite's twin comes from migration 0012 alone (not reflectable for comparison).
        Index(
            "ix_events_segment_category",
            "workspace_id",
            "event",
            text("((properties -> 'category'::text) #>> '{}'::text[])"),  # COLLATE "C" (not reflected)
            "timestamp",
            "profile_id",
            postgresql_where=text(
                "profile_id IS NOT NULL AND jsonb_typeof(properties -> 'category'::text) = 'string'::text"
            ),
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_events_pending",
            "workspace_id",
            "id",
            sqlite_where=text("state = 0"),
            postgresql_where=text("state = 0"),
        ),
    )

    # No index of its own (unlike other workspace-scoped tables): the unique (workspace_id, message_id)
    # index leads with it and serves every lookup by workspace; a third index on the log's hottest insert
    # path cost every event a write (migration 0009 drops it). No foreign key either: PostgreSQL checked it
    # for every inserted row, a fifth of its CPU at B2's rate (migration 0016); the workspace always comes
    # from the authenticated sender.
    workspace_id: Mapped[int] = mapped_column(BigId, nullable=False)
    message_id: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    event: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(400), nullable=True)
    anonymous_id: Mapped[str | None] = mapped_column(String(400), nullable=True)
    profile_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False, default="server")
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    properties: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    traits: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="api")
    state: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=PENDING)


class QuarantinedEvent(IdMixin, WorkspaceScoped, Base):
    """An event that failed validation, kept with its payload and reason until replayed (R4)."""

    __tablename__ = "quarantined_events"
    __table_args__ = (Index("ix_quarantined_events_workspace_open", "workspace_id", "replayed_at"),)

    payload: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False)
    details: Mapped[Any] = mapped_column(Json, nullable=True)
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="api")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replay_result: Mapped[str | None] = mapped_column(String(500), nullable=True)
