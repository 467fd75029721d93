"""Channel-side state: Web Push subscriptions and receipts of provider webhooks (applied once, R21)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, CreatedAtMixin, IdMixin, UTCDateTime, WorkspaceScoped


class PushSubscriptionRecord(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A browser's Web Push subscription for a profile; removed when the push service says it is gone."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (
        UniqueConstraint("workspace_id", "endpoint"),
        Index("ix_push_subscriptions_profile", "profile_id"),
    )

    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    endpoint: Mapped[str] = mapped_column(String(1000), nullable=False)
    p256dh: Mapped[str] = mapped_column(String(200), nullable=False)
    auth: Mapped[str] = mapped_column(String(100), nullable=False)
    user_agent: Mapped[str | None] = mapped_column(String(400), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookReceipt(IdMixin, CreatedAtMixin, Base):
    """A provider callback already applied, by its provider id: the same webhook 50 times changes once."""

    __tablename__ = "webhook_receipts"
    __table_args__ = (UniqueConstraint("provider", "receipt_id"),)

    workspace_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    provider: Mapped[str] = mapped_column(String(40), nullable=False)
    receipt_id: Mapped[str] = mapped_column(String(200), nullable=False)
