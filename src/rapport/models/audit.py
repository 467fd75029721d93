"""The append-only audit log (R26): who did what to which object, when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, CreatedAtMixin, IdMixin, Json


class AuditEntry(IdMixin, CreatedAtMixin, Base):
    """One recorded action; the database refuses UPDATE and DELETE on this table (see migration 0001)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_workspace_created", "workspace_id", "created_at"),)

    # No foreign key on purpose: the log outlives what it describes and is never updated.
    workspace_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    action: Mapped[str] = mapped_column(String(100), nullable=False)
    target_type: Mapped[str] = mapped_column(String(50), nullable=False, default="")
    target_id: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    details: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
