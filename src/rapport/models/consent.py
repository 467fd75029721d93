"""Permission: subscription state per profile × channel × topic, topics, and the consent log (R15)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, CreatedAtMixin, IdMixin, Json, UTCDateTime, WorkspaceScoped
from rapport.kit.clock import utcnow


class Topic(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A subscription group such as "offers" or "news"; ``opt_in`` topics need a yes, others a no.

    Service topics (receipts, delivery updates) are not marketing: caps and marketing consent do not apply,
    but an explicit withdrawal still does.
    """

    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    key: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    opt_in: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    is_service: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Subscription(IdMixin, WorkspaceScoped, Base):
    """The current state of one profile on one channel (``topic`` empty) or one topic of a channel."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("workspace_id", "profile_id", "channel", "topic"),
        Index("ix_subscriptions_profile", "profile_id"),
        Index("ix_subscriptions_workspace_channel_state", "workspace_id", "channel", "topic", "state"),
    )

    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    topic: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    source: Mapped[str] = mapped_column(String(40), nullable=False, default="")


class ConsentRecord(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """One consent fact, append-only (the database refuses UPDATE): who, what, how, when, from where.

    Rows go only when the person is erased (R17), with the profile.
    """

    __tablename__ = "consent_log"
    __table_args__ = (Index("ix_consent_log_profile", "profile_id", "created_at"),)

    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    topic: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    action: Mapped[str] = mapped_column(String(20), nullable=False)
    state_before: Mapped[str | None] = mapped_column(String(20), nullable=True)
    state_after: Mapped[str] = mapped_column(String(20), nullable=False)
    source: Mapped[str] = mapped_column(String(40), nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    wording: Mapped[str | None] = mapped_column(Text, nullable=True)
    wording_version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(400), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
