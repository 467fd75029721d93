"""Workspaces with keys and users, made through the real services (the R20 isolation fixture uses two)."""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.accounts import service as accounts_service
from rapport.accounts.passwords import hash_password
from rapport.accounts.roles import Role
from rapport.models import User
from rapport.runtime import Runtime

PASSWORD = "correct-horse-battery"


@dataclass(frozen=True)
class Tenant:
    """A workspace and the credentials to act in it."""

    workspace_id: int
    slug: str
    write_key: str
    secret_key: str
    admin_email: str
    viewer_email: str
    password: str = PASSWORD

    @property
    def secret_headers(self) -> dict[str, str]:
        """Headers authenticating with the admin secret key."""
        return {"Authorization": f"Bearer {self.secret_key}"}

    @property
    def write_headers(self) -> dict[str, str]:
        """Headers authenticating with the write key the way Segment's SDKs do (Basic, empty password)."""
        token = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return {"Authorization": f"Basic {token}"}


@functools.cache
def _password_hash() -> str:
    # argon2 is deliberately slow (~0.2 s); tests share one hash of PASSWORD instead of hashing per user.
    return hash_password(PASSWORD)


def _user(db: Session, email: str) -> User:
    user = db.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=email.split("@")[0], password_hash=_password_hash())
        db.add(user)
        db.flush()
    return user


def make_tenant(runtime: Runtime, slug: str) -> Tenant:
    """Create a workspace with a write key, an admin secret key, an admin and a viewer."""
    with runtime.sessions() as db:
        ws = accounts_service.create_workspace(db, name=slug.title(), slug=slug)
        write = accounts_service.create_key(db, workspace_id=ws.id, kind="write", name="web", actor="test")
        secret = accounts_service.create_key(
            db, workspace_id=ws.id, kind="secret", name="server", scopes=["admin"], actor="test"
        )
        admin = _user(db, f"admin@{slug}.test")
        accounts_service.set_role(db, workspace_id=ws.id, user_id=admin.id, role=Role.ADMIN, actor="test")
        viewer = _user(db, f"viewer@{slug}.test")
        accounts_service.set_role(db, workspace_id=ws.id, user_id=viewer.id, role=Role.VIEWER, actor="test")
        db.commit()
        return Tenant(
            workspace_id=ws.id,
            slug=slug,
            write_key=write.plain,
            secret_key=secret.plain,
            admin_email=admin.email,
            viewer_email=viewer.email,
        )
