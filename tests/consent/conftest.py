"""Consent fixtures: profiles made through the real importer."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rapport.app import wire_runtime
from rapport.collect.importer import import_profile_rows
from rapport.models import Identity
from rapport.runtime import Runtime
from tests.support.tenants import Tenant


def make_profile(runtime: Runtime, tenant: Tenant, user_id: str, email: str) -> int:
    """Import one profile and return its id."""
    wire_runtime(runtime)
    report = import_profile_rows(
        runtime,
        workspace_id=tenant.workspace_id,
        rows=[{"user_id": user_id, "email": email, "first_name": user_id.title()}],
    )
    assert report.imported == 1, report.as_dict()
    with runtime.read_sessions() as db:
        pid = db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == tenant.workspace_id,
                Identity.kind == "user_id",
                Identity.value == user_id,
            )
        )
    assert pid is not None
    return int(pid)


@pytest.fixture
def profile_id(runtime: Runtime, tenant: Tenant) -> int:
    return make_profile(runtime, tenant, "ann", "ann@example.com")
