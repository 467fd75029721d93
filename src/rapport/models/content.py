"""Message templates per channel (Liquid, with rule blocks) and reusable snippets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, CreatedAtMixin, IdMixin, Json, UTCDateTime, WorkspaceScoped
from rapport.kit.clock import utcnow


class MessageTemplate(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A message for one channel: ``content`` holds the channel's Liquid parts (email: subject, preheader,
    html, text; sms: body; push: title, body, url, icon; inapp: title, body, url, image; webhook: url, body)
    and ``blocks`` the rule blocks (``{name, variants: [{condition, source, name}], default}``) the parts
    place with ``{{ blocks.NAME }}``."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    content: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    blocks: Mapped[list[Any]] = mapped_column(Json, nullable=False, default=list)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Snippet(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A reusable Liquid partial, included in templates with ``{% render "name" %}``."""

    __tablename__ = "snippets"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100), nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
