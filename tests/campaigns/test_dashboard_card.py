"""The dashboard's revenue card: campaigns ranked by the revenue their (non-control) recipients brought in
the chosen range, on the page and through the function behind it."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.runtime import Runtime
from rapport.web.dashboard import campaign_results
from tests.campaigns.conftest import call, make_campaign, recipients, run_worker
from tests.messaging.conftest import make_people
from tests.support.tenants import Tenant
from tests.web.ui import ui_login


def test_top_campaigns_by_attributed_revenue(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI
) -> None:
    make_people(runtime, tenant, 6)
    ids = []
    for name, event in (("Welcome", "signed_up"), ("Browse", "product_viewed")):
        campaign = make_campaign(client, tenant, name=name, kind="triggered", channel="email",
                                 trigger={"type": "event", "event": event},
                                 variants=[{"key": "A", "content": {"subject": "Hi", "text": "x"}}])  # fmt: skip
        call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
        ids.append(campaign["id"])
    batch = [{"type": "track", "userId": f"p{i}", "event": "signed_up"} for i in range(6)]
    batch += [{"type": "track", "userId": f"p{i}", "event": "product_viewed"} for i in range(2)]
    assert client.post("/v1/batch", json={"batch": batch}, headers=tenant.write_headers).status_code == 200
    run_worker(app)
    orders = [{"type": "track", "userId": f"p{i}", "event": "order_completed", "properties": {"total": 25 * (i + 1)}}
              for i in range(3)]  # fmt: skip
    assert client.post("/v1/batch", json={"batch": orders}, headers=tenant.write_headers).status_code == 200
    run_worker(app)
    # no control group: everyone who signed up (p0-p5) or browsed (p0, p1) is treated
    assert {e.variant for e in recipients(runtime, ids[0]).values()} == {"A"}
    assert len(recipients(runtime, ids[1])) == 2

    today = runtime.clock.now().date()
    with runtime.read_sessions() as db:
        rows = campaign_results(db, workspace_id=tenant.workspace_id, first=today, last=today)
        before = campaign_results(
            db,
            workspace_id=tenant.workspace_id,
            first=today - timedelta(days=9),
            last=today - timedelta(days=1),
        )
    assert [(r.campaign_id, r.name, r.revenue, r.conversions) for r in rows] == [
        (ids[0], "Welcome", 150.0, 3),  # p0, p1 and p2 bought for 25, 50 and 75
        (ids[1], "Browse", 75.0, 2),  # of them, p0 and p1 had browsed
    ]
    assert before == []
    ui_login(client, tenant.admin_email, tenant.password)
    page = client.get("/")
    assert f'href="/campaigns/{ids[0]}">Welcome</a>' in page.text
    conversions = client.get("/ui/api/dashboard/series", params={"metric": "messages_converted"}).json()
    revenue = client.get("/ui/api/dashboard/series", params={"metric": "revenue_attributed"}).json()
    assert conversions["total"] == sum(r.conversions for r in rows)
    assert revenue["total"] == 225.0
