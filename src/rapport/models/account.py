"""Workspaces (tenants), UI users with their roles, API keys and UI sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, CreatedAtMixin, IdMixin, Json, UTCDateTime, WorkspaceScoped


class Workspace(IdMixin, CreatedAtMixin, Base):
    """A tenant: every other row belongs to exactly one workspace."""

    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    slug: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="Europe/London")
    default_region: Mapped[str] = mapped_column(String(2), nullable=False, default="GB")
    settings: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    # bumped by database triggers whenever the workspace's definitions change (migration 0014): what a
    # process builds from them is kept while it stays the same (rapport.accounts.definitions)
    definitions_rev: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")


class User(IdMixin, CreatedAtMixin, Base):
    """A person who logs into the marketer UI; global, given roles per workspace by memberships."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    password_hash: Mapped[str] = mapped_column(String(200), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Membership(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A user's role in one workspace: admin, marketer or viewer."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"),)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)


class ApiKey(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A write key (public, ingest only) or a secret key (scoped); only the SHA-256 of the key is kept."""

    __tablename__ = "api_keys"

    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(20), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    scopes: Mapped[list[str]] = mapped_column(Json, nullable=False, default=list)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UiSession(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A logged-in browser: the cookie carries a token whose hash is stored here with the CSRF token."""

    __tablename__ = "ui_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
