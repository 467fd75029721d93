"""Profiles (one per person), their identities, trait history, merges and erasure suppressions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, CreatedAtMixin, IdMixin, Json, UTCDateTime, WorkspaceScoped
from rapport.kit.clock import utcnow


def _typed_number(column: str, key: str) -> str:
    """PostgreSQL's own rendering of a typed JSON number (what it reflects, so that the models compare equal)."""
    value = f"({column} -> '{key}'::text)"
    return (
        f"(\nCASE\n    WHEN jsonb_typeof{value} = 'number'::text THEN ({value} #>> '{{}}'::text[])::double precision\n"
        "    ELSE NULL::double precision\nEND)"
    )


class Profile(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """One person. ``traits`` holds current values; ``trait_times`` the event time each value was set at
    (last write wins by event timestamp). A merged-away profile keeps its row with ``merged_into_id`` set so
    late references can be followed to the survivor."""

    __tablename__ = "profiles"
    __table_args__ = (
        Index("ix_profiles_workspace_email", "workspace_id", "email"),
        Index("ix_profiles_workspace_phone", "workspace_id", "phone"),
        Index("ix_profiles_workspace_name", "workspace_id", "name"),
        # The live profiles of a workspace: segment counts check membership of their id sets here without
        # reading the (JSON-heavy) rows (index-only on PostgreSQL; SQLite is told so, see segments.repository).
        Index(
            "ix_profiles_live",
            "workspace_id",
            "id",
            sqlite_where=text("merged_into_id IS NULL"),
            postgresql_where=text("merged_into_id IS NULL"),
        ),
        # The profiles merged into one: a merge re-points those that pointed at the profile it merges away,
        # and deleting a profile sets theirs to NULL (the key's ON DELETE). Without it, each was a walk of
        # the workspace's profiles (migration 0017).
        Index(
            "ix_profiles_merged_into",
            "merged_into_id",
            sqlite_where=text("merged_into_id IS NOT NULL"),
            postgresql_where=text("merged_into_id IS NOT NULL"),
        ),
        # Segment reads (rapport.segments.indexes): the JSON type and value of built-in fields, in PostgreSQL's
        # own rendering (what it reflects, so models and migrations compare equal); SQLite's twins (same names;
        # json_type, json_extract) come from migration 0007 alone: SQLite expression indexes are not reflected.
        Index(
            "ix_profiles_segment_city",
            "workspace_id",
            text("jsonb_typeof(traits -> 'city'::text)"),
            text("((traits -> 'city'::text) #>> '{}'::text[])"),  # COLLATE "C" (not reflected)
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_profiles_segment_total_spend",
            "workspace_id",
            text(_typed_number("computed", "total_spend")),
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_profiles_segment_total_orders",
            "workspace_id",
            text(_typed_number("computed", "total_orders")),
        ).ddl_if(dialect="postgresql"),
    )

    traits: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    # Materialised computed traits (see rapport.process); windowed traits are not kept here, nor are the
    # scores (``ProfileScores``: a whole-workspace rewrite of them must not rewrite this wide, indexed row).
    computed: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    trait_times: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    # Denormalised from identities/traits for search and display.
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    timezone_source: Mapped[str | None] = mapped_column(String(20), nullable=True)
    first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    merged_into_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="SET NULL"), nullable=True
    )


class ProfileScores(WorkspaceScoped, Base):
    """A profile's scores (RFM, CLV, churn danger, propensities, loyalty: ``rapport.process.scores_service``)
    as one flat JSON object, in a narrow row of their own: the nightly run rewrites every profile's scores,
    which in the profile row meant a new version of a wide row and of every index on it (on PostgreSQL about
    two minutes for a million profiles; here the rows are small and only the primary key is indexed)."""

    __tablename__ = "profile_scores"

    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    scores: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class Identity(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """An identifier of a profile: user_id, anonymous_id, email (normalised), phone (E.164), device token,
    or ``external:<system>``. Unique per workspace: one identifier, one person."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("workspace_id", "kind", "value"),
        Index("ix_identities_profile", "profile_id"),
    )

    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    value: Mapped[str] = mapped_column(String(400), nullable=False)
    source_event_id: Mapped[int | None] = mapped_column(BigId, nullable=True)


class TraitChange(IdMixin, WorkspaceScoped, Base):
    """One change of one trait: the history behind ``Profile.traits``."""

    __tablename__ = "trait_history"
    __table_args__ = (Index("ix_trait_history_profile_name", "profile_id", "name", "set_at"),)

    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    value: Mapped[Any] = mapped_column(Json, nullable=True)
    previous: Mapped[Any] = mapped_column(Json, nullable=True)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    source: Mapped[str] = mapped_column(String(40), nullable=False, default="event")
    source_event_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class ProfileMerge(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A recorded merge: ``merged_id`` was folded into ``survivor_id`` because of an identifier."""

    __tablename__ = "profile_merges"
    __table_args__ = (
        Index("ix_profile_merges_survivor", "survivor_id"),
        Index("ix_profile_merges_merged", "merged_id"),
    )

    survivor_id: Mapped[int] = mapped_column(BigId, nullable=False)
    merged_id: Mapped[int] = mapped_column(BigId, nullable=False)
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    source_event_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)


class Suppression(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A hashed identifier that must never be re-created or sent to (erasure, R17; complaints, R18)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "value_hash"),)

    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    value_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(String(40), nullable=False)
