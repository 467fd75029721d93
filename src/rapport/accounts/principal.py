"""Who is calling: a write key, a secret key or a logged-in UI user, always within one workspace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rapport.accounts.roles import has_scope


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    workspace_id: int
    kind: str  # "write_key" | "secret_key" | "user" | "system"
    id: int
    scopes: frozenset[str]
    role: str | None = None
    #: For keys: when the key was last recorded as used (recorded at most every few minutes).
    last_used_at: datetime | None = None

    @property
    def actor(self) -> str:
        """Return the label written in audit entries, e.g. ``key:12`` or ``user:3``."""
        return {"write_key": "key", "secret_key": "key", "user": "user", "system": "system"}[
            self.kind
        ] + f":{self.id}"

    def can(self, scope: str) -> bool:
        """Tell whether this caller holds ``scope``."""
        return self.kind != "write_key" and has_scope(self.scopes, scope)


def system_principal(workspace_id: int) -> Principal:
    """Return the principal used by the CLI and background jobs."""
    return Principal(workspace_id=workspace_id, kind="system", id=0, scopes=frozenset({"admin"}))
