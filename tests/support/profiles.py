"""Looking profiles up the way tests need to: by one of their identifiers."""

from __future__ import annotations

from sqlalchemy import select

from rapport.models import Identity
from rapport.runtime import Runtime
from tests.support.tenants import Tenant


def profile_id(runtime: Runtime, tenant: Tenant, value: str) -> int:
    """The id of the profile holding identifier ``value`` (a user id, an email, ...) in the tenant's
    workspace."""
    with runtime.read_sessions() as db:
        pid = db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == tenant.workspace_id, Identity.value == value
            )
        )
    assert pid is not None
    return int(pid)
