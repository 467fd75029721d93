"""Workspaces, users, memberships, API keys and UI sessions: the rules around them."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from rapport.accounts import repository as repo
from rapport.accounts.passwords import hash_password, verify_password
from rapport.accounts.principal import Principal
from rapport.accounts.roles import ROLE_SCOPES, SCOPES, Role
from rapport.audit import service as audit_service
from rapport.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from rapport.kit.tokens import hash_token, new_token
from rapport.models import ApiKey, Membership, UiSession, User, Workspace

WRITE_KEY_PREFIX = "wk"
SECRET_KEY_PREFIX = "sk"  # noqa: S105 (a prefix, not a secret)
LAST_USED_EVERY = timedelta(minutes=5)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,98}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: the only moment its plain value is known."""

    key: ApiKey
    plain: str


def create_workspace(
    db: Session, *, name: str, slug: str, timezone: str = "Europe/London", default_region: str = "GB"
) -> Workspace:
    """Create a workspace; the slug must be unique and URL-safe."""
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise ValidationFailed(
            "slug must be 2-100 lowercase letters, digits or dashes", details={"slug": slug}
        )
    if repo.get_workspace_by_slug(db, slug):
        raise Conflict(f"a workspace with slug {slug!r} exists")
    workspace = Workspace(
        name=name.strip() or slug, slug=slug, timezone=timezone, default_region=default_region
    )
    db.add(workspace)
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace.id,
        actor="system",
        action="workspace.created",
        target_type="workspace",
        target_id=workspace.id,
    )
    return workspace


def get_workspace(db: Session, workspace_id: int) -> Workspace:
    """Return the workspace or raise NotFound."""
    workspace = repo.get_workspace(db, workspace_id)
    if workspace is None:
        raise NotFound("workspace not found")
    return workspace


def get_workspace_by_slug(db: Session, slug: str) -> Workspace:
    """Return the workspace with this slug or raise NotFound."""
    workspace = repo.get_workspace_by_slug(db, slug)
    if workspace is None:
        raise NotFound(f"no workspace {slug!r}")
    return workspace


def list_workspaces(db: Session) -> Sequence[Workspace]:
    """Return every workspace, oldest first."""
    return repo.list_workspaces(db)


def create_user(db: Session, *, email: str, password: str, name: str = "") -> User:
    """Create a UI user; passwords need at least 10 characters."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise ValidationFailed("not an email address", details={"field": "email"})
    if len(password) < 10:
        raise ValidationFailed("password must have at least 10 characters", details={"field": "password"})
    if repo.get_user_by_email(db, email):
        raise Conflict("a user with this email exists")
    user = User(email=email, name=name, password_hash=hash_password(password))
    db.add(user)
    db.flush()
    return user


def get_or_create_user(db: Session, *, email: str, password: str, name: str = "") -> User:
    """Return the user with this email, creating it with ``password`` when absent."""
    user = repo.get_user_by_email(db, email)
    return user or create_user(db, email=email, password=password, name=name)


def set_role(db: Session, *, workspace_id: int, user_id: int, role: Role, actor: str) -> Membership:
    """Give a user a role in a workspace (creating the membership when needed); audited."""
    membership = repo.get_membership(db, workspace_id=workspace_id, user_id=user_id)
    before = membership.role if membership else None
    if membership is None:
        membership = Membership(workspace_id=workspace_id, user_id=user_id, role=role.value)
        db.add(membership)
    else:
        membership.role = role.value
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="user.role_set",
        target_type="user",
        target_id=user_id,
        details={"before": before, "after": role.value},
    )
    return membership


def list_members(db: Session, workspace_id: int) -> Sequence[tuple[Membership, User]]:
    """Return the workspace's members and their users."""
    return repo.list_members(db, workspace_id)


def create_key(
    db: Session,
    *,
    workspace_id: int,
    kind: str,
    name: str,
    scopes: Sequence[str] = (),
    actor: str,
) -> IssuedKey:
    """Issue a write key or a scoped secret key; only its hash is stored, the plain value is returned once."""
    if kind not in {"write", "secret"}:
        raise ValidationFailed("kind must be 'write' or 'secret'", details={"field": "kind"})
    if kind == "write" and scopes:
        raise ValidationFailed("write keys carry no scopes: they can only send events")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValidationFailed(f"unknown scopes: {', '.join(unknown)}", details={"known": sorted(SCOPES)})
    if kind == "secret" and not scopes:
        raise ValidationFailed("a secret key needs at least one scope", details={"known": sorted(SCOPES)})
    prefix = WRITE_KEY_PREFIX if kind == "write" else SECRET_KEY_PREFIX
    plain = new_token(prefix)
    key = ApiKey(
        workspace_id=workspace_id,
        kind=kind,
        name=name.strip() or kind,
        prefix=plain[:10],
        key_hash=hash_token(plain),
        scopes=sorted(set(scopes)),
        created_by=actor,
    )
    db.add(key)
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="key.created",
        target_type="api_key",
        target_id=key.id,
        details={"kind": kind, "name": key.name, "scopes": key.scopes},
    )
    return IssuedKey(key=key, plain=plain)


def list_keys(db: Session, *, workspace_id: int, include_revoked: bool = False) -> Sequence[ApiKey]:
    """Return the workspace's keys (never their values)."""
    return repo.list_keys(db, workspace_id, include_revoked=include_revoked)


def get_key(db: Session, *, workspace_id: int, key_id: int) -> ApiKey:
    """Return one of the workspace's keys or raise NotFound."""
    key = repo.get_key(db, workspace_id=workspace_id, key_id=key_id)
    if key is None:
        raise NotFound("key not found")
    return key


def revoke_key(db: Session, *, workspace_id: int, key_id: int, actor: str, now: datetime) -> ApiKey:
    """Revoke a key at once; revoking twice is harmless."""
    key = get_key(db, workspace_id=workspace_id, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = now
        db.flush()
        audit_service.record(
            db,
            workspace_id=workspace_id,
            actor=actor,
            action="key.revoked",
            target_type="api_key",
            target_id=key.id,
        )
    return key


def authenticate_key(db: Session, plain: str, *, now: datetime | None = None) -> Principal:
    """Resolve a presented key to its principal, or raise Unauthenticated."""
    key = repo.get_key_by_hash(db, hash_token(plain.strip()))
    if key is None or key.revoked_at is not None:
        raise Unauthenticated("invalid or revoked key")
    if now is not None and key_use_is_stale(key.last_used_at, now):
        key.last_used_at = now
    kind = "write_key" if key.kind == "write" else "secret_key"
    return Principal(
        workspace_id=key.workspace_id,
        kind=kind,
        id=key.id,
        scopes=frozenset(key.scopes),
        last_used_at=key.last_used_at,
    )


def key_use_is_stale(last_used_at: datetime | None, now: datetime) -> bool:
    """Tell whether a key's last-used time is old enough to be recorded again (at most every 5 minutes)."""
    return last_used_at is None or now - last_used_at > LAST_USED_EVERY


def authenticate_user(db: Session, *, email: str, password: str) -> User:
    """Check a login; the same error whether the email or the password was wrong."""
    user = repo.get_user_by_email(db, email)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthenticated("wrong email or password")
    if not user.is_active:
        raise Unauthenticated("wrong email or password")
    return user


def default_workspace_for(db: Session, user: User) -> Membership:
    """Return the user's first membership, or raise Forbidden when the user belongs to no workspace."""
    memberships = repo.list_memberships_of_user(db, user.id)
    if not memberships:
        raise Forbidden("this user belongs to no workspace")
    return memberships[0]


def start_session(
    db: Session, *, user: User, workspace_id: int, now: datetime, max_age_seconds: int
) -> tuple[UiSession, str]:
    """Open a UI session; returns the row and the plain token for the cookie."""
    if repo.get_membership(db, workspace_id=workspace_id, user_id=user.id) is None:
        raise Forbidden("this user has no role in that workspace")
    token = new_token("sess", 32)
    session = UiSession(
        workspace_id=workspace_id,
        user_id=user.id,
        token_hash=hash_token(token),
        csrf_token=secrets.token_urlsafe(32),
        expires_at=now + timedelta(seconds=max_age_seconds),
    )
    db.add(session)
    repo.delete_expired_sessions(db, now)
    db.flush()
    return session, token


def resolve_session(db: Session, token: str, *, now: datetime) -> tuple[UiSession, Principal, User]:
    """Return the live session behind a cookie token and its principal, or raise Unauthenticated."""
    session = repo.get_session_by_hash(db, hash_token(token))
    if session is None or session.expires_at <= now:
        raise Unauthenticated("not logged in")
    membership = repo.get_membership(db, workspace_id=session.workspace_id, user_id=session.user_id)
    user = db.get(User, session.user_id)
    if membership is None or user is None or not user.is_active:
        raise Unauthenticated("not logged in")
    role = Role(membership.role)
    principal = Principal(
        workspace_id=session.workspace_id, kind="user", id=user.id, scopes=ROLE_SCOPES[role], role=role.value
    )
    return session, principal, user


def end_session(db: Session, session_id: int) -> None:
    """Log out: delete the session row."""
    repo.delete_session(db, session_id)
