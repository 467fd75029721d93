"""Campaigns: who gets which variant of what and when, the frozen assignment, and measured conversions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, CreatedAtMixin, IdMixin, Json, UTCDateTime, WorkspaceScoped
from rapport.kit.clock import utcnow


class Campaign(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A broadcast (segments minus exclusions, now / at a time / at a local time), a triggered campaign (an
    event, a segment entry or exit) or a date-relative one (a profile date trait ± days at a local time).

    ``trigger`` (JSON) says what fires a triggered or date-relative campaign; ``experiment`` (JSON) the A/B/n
    test phase and how a winner is picked; ``goal_event`` within ``goal_days`` of entry is a conversion.
    """

    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        Index("ix_campaigns_status", "workspace_id", "kind", "status"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="draft")
    status_reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    topic: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    message_kind: Mapped[str] = mapped_column(String(16), nullable=False, default="marketing")
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    segment_ids: Mapped[list[int]] = mapped_column(Json, nullable=False, default=list)
    exclude_segment_ids: Mapped[list[int]] = mapped_column(Json, nullable=False, default=list)
    trigger: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    reentry: Mapped[str] = mapped_column(String(20), nullable=False, default="once")
    reentry_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delay_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    local_time: Mapped[str | None] = mapped_column(String(5), nullable=True)
    throttle_per_hour: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seed_addresses: Mapped[list[str]] = mapped_column(Json, nullable=False, default=list)
    control_percent: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    experiment: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    winner_variant: Mapped[str | None] = mapped_column(String(40), nullable=True)
    winner_decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    goal_event: Mapped[str] = mapped_column(String(200), nullable=False, default="order_completed")
    goal_days: Mapped[int] = mapped_column(Integer, nullable=False, default=7)
    goal_revenue_property: Mapped[str] = mapped_column(String(100), nullable=False, default="total")
    cost_per_message: Mapped[float | None] = mapped_column(Float, nullable=True)
    audience_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CampaignVariant(IdMixin, WorkspaceScoped, Base):
    """One arm of a campaign: a template (or inline content) and its share of the non-control audience."""

    __tablename__ = "campaign_variants"
    __table_args__ = (UniqueConstraint("campaign_id", "key"),)

    campaign_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(40), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    template_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("message_templates.id", ondelete="RESTRICT"), nullable=True
    )
    content: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    weight: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class CampaignRecipient(IdMixin, WorkspaceScoped, Base):
    """A profile's entry into a campaign and the arm it was assigned (a variant key or ``control``).

    ``entry_key`` distinguishes re-entries of a triggered campaign ('' for a broadcast). ``state``: queued
    (an outbox row exists), held_out (control: nothing sent, a ``campaign_held_out`` event recorded),
    waiting (the rest of an A/B/n audience waiting for the winner), skipped (with ``reason``).
    """

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "profile_id", "entry_key"),
        Index("ix_campaign_recipients_state", "campaign_id", "state"),
        Index("ix_campaign_recipients_profile", "workspace_id", "profile_id", "entered_at"),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    entry_key: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    variant: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    reason: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    message_pk: Mapped[int | None] = mapped_column(BigId, nullable=True)


class CampaignConversion(IdMixin, WorkspaceScoped, Base):
    """A goal event of a recipient within the campaign's goal window: at most one per entry."""

    __tablename__ = "campaign_conversions"
    __table_args__ = (
        UniqueConstraint("recipient_id"),
        Index("ix_campaign_conversions_campaign", "campaign_id", "variant"),
        Index("ix_campaign_conversions_profile", "profile_id"),  # a profile's deletion cascades here (0017)
    )

    campaign_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    )
    recipient_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("campaign_recipients.id", ondelete="CASCADE"), nullable=False
    )
    profile_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("profiles.id", ondelete="CASCADE"), nullable=False
    )
    variant: Mapped[str] = mapped_column(String(40), nullable=False)
    event_pk: Mapped[int | None] = mapped_column(BigId, nullable=True)
    revenue: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    converted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
