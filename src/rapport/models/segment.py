"""Segments (a saved AST) and their materialised membership with entry time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, CreatedAtMixin, IdMixin, Json, UTCDateTime, WorkspaceScoped
from rapport.kit.clock import utcnow


class Segment(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A named audience: the versioned AST, its canonical text, and counters of the materialised members."""

    __tablename__ = "segments"
    __table_args__ = (Index("ix_segments_workspace_name", "workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    ast: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    seed: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    member_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    by_time: Mapped[bool] = mapped_column(default=False, nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SegmentMember(Base):
    """A profile inside a segment since ``entered_at``."""

    __tablename__ = "segment_members"
    __table_args__ = (
        PrimaryKeyConstraint("segment_id", "profile_id"),
        Index("ix_segment_members_profile", "workspace_id", "profile_id"),
    )

    workspace_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    )
    segment_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("segments.id", ondelete="CASCADE"), nullable=False
    )
    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
