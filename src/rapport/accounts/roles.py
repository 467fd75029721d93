"""Roles of UI users and scopes of secret keys."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a UI user may do in a workspace; each role includes the ones below it."""

    VIEWER = "viewer"
    MARKETER = "marketer"
    ADMIN = "admin"

    def at_least(self, other: Role) -> bool:
        """Tell whether this role includes ``other``."""
        order = [Role.VIEWER, Role.MARKETER, Role.ADMIN]
        return order.index(self) >= order.index(other)


#: Scopes a secret key can hold. ``admin`` implies every other scope.
SCOPES: dict[str, str] = {
    "admin": "everything, including keys, users and settings",
    "profiles:read": "read profiles, identities, traits and timelines",
    "profiles:write": "change, merge, export and erase profiles; imports",
    "events:read": "read events and quarantined events",
    "events:write": "send events with a secret key (server-side tracking)",
    "segments:read": "preview and list segments and their members",
    "segments:write": "create, change and archive segments",
    "messages:send": "send transactional messages",
    "campaigns:read": "read campaigns, templates and results",
    "campaigns:write": "create and run campaigns and templates",
    "consent:write": "grant and withdraw consent on behalf of a profile",
    "settings:write": "change channels, caps, quiet hours, computed traits",
}

#: What a UI role may do, expressed as the scopes it implies.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.VIEWER: frozenset(s for s in SCOPES if s.endswith(":read")),
    Role.MARKETER: frozenset(s for s in SCOPES if s not in {"admin", "settings:write"}),
    Role.ADMIN: frozenset(SCOPES),
}


def has_scope(granted: frozenset[str] | set[str] | list[str], needed: str) -> bool:
    """Tell whether ``granted`` allows ``needed`` (``admin`` allows everything)."""
    return "admin" in granted or needed in granted
