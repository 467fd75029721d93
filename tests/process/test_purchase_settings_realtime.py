"""The real-time fold reads the workspace's purchase settings (which events are purchases, which property
holds their value) from the settings the processor read for the batch."""

from __future__ import annotations

from sqlalchemy import select

from rapport.app import wire_runtime
from rapport.models import Profile, Workspace
from rapport.process import repository
from rapport.runtime import Runtime
from tests.collect.processing_support import append, at, process
from tests.support.tenants import Tenant


def test_custom_purchase_events_and_value_property_drive_the_incremental_fold(
    runtime: Runtime, tenant: Tenant
) -> None:
    wire_runtime(runtime)
    ws = tenant.workspace_id
    with runtime.sessions() as db:
        workspace = db.get(Workspace, ws)
        assert workspace is not None
        workspace.settings = {
            **(workspace.settings or {}),
            "purchases": {"events": ["Bought"], "value_property": "amount"},
        }
        db.commit()
    append(
        runtime,
        ws,
        {"type": "track", "userId": "u1", "event": "Bought", "properties": {"amount": 30, "total": 999}, "timestamp": at(1)},
        {"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"total": 99}, "timestamp": at(2)},
        {"type": "track", "userId": "u1", "event": "Bought", "properties": {"amount": 12.5}, "timestamp": at(3)},
    )  # fmt: skip
    assert process(runtime) == 3
    with runtime.read_sessions() as db:
        ids = list(db.scalars(select(Profile.id).where(Profile.workspace_id == ws)))
        [computed] = repository.computed_of(db, ws, ids).values()
    assert computed["total_orders"] == 2
    assert computed["total_spend"] == 42.5
