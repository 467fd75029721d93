"""The active-trigger lookup the processor's hooks share within one transaction never outlives it: a
campaign launched after a commit is seen by the next transaction of the same session."""

from __future__ import annotations

from fastapi.testclient import TestClient

from rapport.campaigns.triggers import active_triggers
from rapport.runtime import Runtime
from tests.campaigns.conftest import call, make_campaign, make_segment
from tests.support.tenants import Tenant

ENTRY = {"segment_entry", "segment_exit"}


def test_lookup_is_per_transaction(runtime: Runtime, tenant: Tenant, client: TestClient) -> None:
    ws = tenant.workspace_id
    segment_id = make_segment(client, tenant, "VIP", "is_vip = true")
    campaign = make_campaign(
        client,
        tenant,
        name="Welcome to VIP",
        kind="triggered",
        channel="email",
        trigger={"type": "segment_entry", "segment_id": segment_id},
        variants=[{"key": "A", "content": {"subject": "Hi", "text": "Hi"}}],
    )
    with runtime.sessions() as db:
        assert active_triggers(db, workspace_id=ws, types=ENTRY) == []
        assert active_triggers(db, workspace_id=ws, types={"event"}) == []
        db.commit()
        call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
        found = active_triggers(db, workspace_id=ws, types=ENTRY)
        assert [(cid, trigger["segment_id"]) for cid, trigger in found] == [(campaign["id"], segment_id)]
        assert active_triggers(db, workspace_id=ws, types={"event"}) == []  # same rows, other types
        db.rollback()
        call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/pause")
        assert active_triggers(db, workspace_id=ws, types=ENTRY) == []
