"""Saved answers of management calls made with an Idempotency-Key (R5)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, CreatedAtMixin, IdMixin, Json, WorkspaceScoped


class IdempotencyRecord(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """The first request with a key reserves the row; its answer is saved when it completes."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    key: Mapped[str] = mapped_column(String(200), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
