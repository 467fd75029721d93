"""The outbox: one row per message × recipient × channel, and the counters behind frequency caps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, CreatedAtMixin, IdMixin, Json, UTCDateTime, WorkspaceScoped
from rapport.kit.clock import utcnow


class Message(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """One message to one profile on one channel, written in the transaction that decided to send it.

    ``dedupe_key`` (campaign × recipient × channel, or a caller's idempotency key) is unique per workspace:
    the same decision twice makes one row (R6). ``message_id`` is the id providers see (SMTP Message-ID),
    reused on every retry (R8).
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("workspace_id", "dedupe_key"),
        UniqueConstraint("message_id"),
        # In the claim's order (messaging.repository.claim): walked, not sorted (migration 0010).
        Index("ix_messages_due", "status", "priority", "run_at", "id"),
        Index("ix_messages_profile", "profile_id", "created_at"),
        Index("ix_messages_campaign", "workspace_id", "campaign_id", "status"),
    )

    message_id: Mapped[str] = mapped_column(String(100), nullable=False)
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False)
    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    campaign_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    variant: Mapped[str | None] = mapped_column(String(40), nullable=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    topic: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="marketing")
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="queued")
    status_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=6)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    to_address: Mapped[str | None] = mapped_column(String(400), nullable=True)
    content: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    provider_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class SendCounter(Base):
    """How many capped messages a profile got on a channel (``*``: all channels) in a local day or week."""

    __tablename__ = "send_counters"
    __table_args__ = (PrimaryKeyConstraint("workspace_id", "profile_id", "channel", "period"),)

    # no foreign keys (migration 0011): the deliverer's hottest write; erasure deletes a person's counters
    workspace_id: Mapped[int] = mapped_column(BigId, nullable=False)
    profile_id: Mapped[int] = mapped_column(BigId, nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
