"""Every query on workspaces, users, memberships, keys and UI sessions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from rapport.models import ApiKey, Membership, UiSession, User, Workspace


def get_workspace(db: Session, workspace_id: int) -> Workspace | None:
    """Return the workspace with this id."""
    return db.get(Workspace, workspace_id)


def get_workspace_by_slug(db: Session, slug: str) -> Workspace | None:
    """Return the workspace with this slug."""
    return db.scalar(select(Workspace).where(Workspace.slug == slug))


def list_workspaces(db: Session) -> Sequence[Workspace]:
    """Return every workspace, oldest first."""
    return db.scalars(select(Workspace).order_by(Workspace.id)).all()


def get_user_by_email(db: Session, email: str) -> User | None:
    """Return the user with this (lower-cased) email."""
    return db.scalar(select(User).where(User.email == email.strip().lower()))


def get_membership(db: Session, *, workspace_id: int, user_id: int) -> Membership | None:
    """Return the user's membership of the workspace."""
    return db.scalar(
        select(Membership).where(Membership.workspace_id == workspace_id, Membership.user_id == user_id)
    )


def list_memberships_of_user(db: Session, user_id: int) -> Sequence[Membership]:
    """Return the user's memberships, oldest first."""
    return db.scalars(select(Membership).where(Membership.user_id == user_id).order_by(Membership.id)).all()


def list_members(db: Session, workspace_id: int) -> Sequence[tuple[Membership, User]]:
    """Return the workspace's members with their users."""
    rows = db.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id == workspace_id)
        .order_by(User.email)
    ).all()
    return [(m, u) for m, u in rows]


def get_key_by_hash(db: Session, key_hash: str) -> ApiKey | None:
    """Return the key whose SHA-256 is ``key_hash``."""
    return db.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def get_key(db: Session, *, workspace_id: int, key_id: int) -> ApiKey | None:
    """Return the workspace's key with this id."""
    return db.scalar(select(ApiKey).where(ApiKey.workspace_id == workspace_id, ApiKey.id == key_id))


def list_keys(db: Session, workspace_id: int, *, include_revoked: bool = False) -> Sequence[ApiKey]:
    """Return the workspace's keys, newest first."""
    stmt = select(ApiKey).where(ApiKey.workspace_id == workspace_id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return db.scalars(stmt.order_by(ApiKey.id.desc())).all()


def get_session_by_hash(db: Session, token_hash: str) -> UiSession | None:
    """Return the UI session whose token hashes to ``token_hash``."""
    return db.scalar(select(UiSession).where(UiSession.token_hash == token_hash))


def delete_session(db: Session, session_id: int) -> None:
    """Delete one UI session."""
    db.execute(delete(UiSession).where(UiSession.id == session_id))


def delete_expired_sessions(db: Session, now: datetime) -> int:
    """Delete expired UI sessions and return how many."""
    result = db.execute(delete(UiSession).where(UiSession.expires_at < now))
    return int(getattr(result, "rowcount", 0) or 0)
