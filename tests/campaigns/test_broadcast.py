"""A broadcast with two variants and a 10 % control group, end to end through the API, the worker and a
real SMTP sink, on SQLite and PostgreSQL: who got which variant, and nobody in control got anything."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.campaigns import assign
from rapport.runtime import Runtime
from tests.campaigns.conftest import call, event_names, make_campaign, make_segment, recipients, run_worker
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

VARIANTS = [
    {
        "key": "A",
        "name": "Plain",
        "content": {"subject": "A: hello {{ profile.first_name }}", "html": "<p>A</p>"},
    },
    {
        "key": "B",
        "name": "Bold",
        "content": {"subject": "B: hello {{ profile.first_name }}", "html": "<p>B</p>"},
    },
]


def test_two_variants_and_a_control_group_reach_the_sink_exactly(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    people = make_people(runtime, tenant, 80, extra={"city": "Leeds"})
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    campaign = make_campaign(
        client,
        tenant,
        name="Autumn sale",
        channel="email",
        segment_ids=[segment_id],
        variants=VARIANTS,
        control_percent=10,
    )
    cid = campaign["id"]
    expected_control = {pid for pid in people if assign.unit(f"campaign:{cid}", pid, "control") * 100 < 10}
    assert 2 <= len(expected_control) <= 20

    estimate = call(client, tenant, "GET", f"/api/v1/campaigns/{cid}/audience")
    assert estimate["total"] == 80 and estimate["control"] == len(expected_control)
    assert estimate["reachable"] == 80 and estimate["no_consent"] == 0

    launched = call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")
    assert launched["status"] == "sending" and launched["audience_size"] == 80
    run_worker(app)

    entries = recipients(runtime, cid)
    assert set(entries) == set(people)
    control = {pid for pid, e in entries.items() if e.variant == "control"}
    assert control == expected_control
    assert all(entries[pid].state == "held_out" for pid in control)

    received = sink.wait_for(80 - len(control))
    by_address = {m.rcpt_tos[0]: m.parsed()["Subject"] for m in received}
    assert len(received) == 80 - len(control) == len(by_address)  # exactly once each
    for index, pid in enumerate(people):
        address = f"person{index}@example.com"
        entry = entries[pid]
        if pid in control:
            assert address not in by_address
            assert "campaign_held_out" in event_names(runtime, pid)
        else:
            assert by_address[address] == f"{entry.variant}: hello Person{index}"
    assert {e.variant for e in entries.values()} == {"A", "B", "control"}

    stats = call(client, tenant, "GET", f"/api/v1/campaigns/{cid}/stats")
    assert stats["control"]["recipients"] == len(control)
    assert sum(a["recipients"] for a in stats["arms"]) == 80 - len(control)
    assert sum(a["sent"] for a in stats["arms"]) == 80 - len(control)
    assert call(client, tenant, "GET", f"/api/v1/campaigns/{cid}")["status"] == "sent"

    # a second look at the queue sends nothing more
    run_worker(app)
    assert len(sink.messages) == 80 - len(control)


def test_conversions_are_attributed_per_arm_with_lift_against_control(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    people = make_people(runtime, tenant, 40, extra={"city": "York"})
    segment_id = make_segment(client, tenant, "York", 'city = "York"')
    campaign = make_campaign(
        client,
        tenant,
        name="Win back",
        channel="email",
        segment_ids=[segment_id],
        variants=VARIANTS[:1],
        control_percent=25,
        goal_event="order_completed",
        goal_days=7,
        cost_per_message=0.5,
    )
    cid = campaign["id"]
    call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")
    run_worker(app)
    entries = recipients(runtime, cid)
    treated = [pid for pid in people if entries[pid].variant == "A"]
    held = [pid for pid in people if entries[pid].variant == "control"]
    assert treated and held
    index = {pid: i for i, pid in enumerate(people)}
    buyers = treated[:6] + held[:1]
    batch = [
        {"type": "track", "userId": f"p{index[pid]}", "event": "order_completed", "properties": {"total": 40}}
        for pid in buyers
    ]
    # a second purchase by the same person within the window does not count twice
    batch.append({"type": "track", "userId": f"p{index[treated[0]]}", "event": "order_completed",
                  "properties": {"total": 99}})  # fmt: skip
    response = client.post("/v1/batch", json={"batch": batch}, headers=tenant.write_headers)
    assert response.status_code == 200, response.text
    run_worker(app)

    stats = call(client, tenant, "GET", f"/api/v1/campaigns/{cid}/stats")
    [arm] = stats["arms"]
    assert arm["conversions"] == 6 and arm["revenue"] == 240.0
    assert stats["control"]["conversions"] == 1 and stats["control"]["revenue"] == 40.0
    expected_lift = 6 / len(treated) - 1 / len(held)
    assert abs(arm["lift"] - expected_lift) < 1e-9
    assert arm["lift_interval"]["low"] < expected_lift < arm["lift_interval"]["high"]
    assert stats["cost"] == round(len(treated) * 0.5, 2)
    assert stats["incremental_conversions"] == pytest.approx(6 - len(treated) / len(held))


def test_the_estimate_counts_who_is_at_a_frequency_cap(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    from rapport.models import Workspace

    make_people(runtime, tenant, 3, extra={"city": "Hull"})
    with runtime.sessions() as db:
        workspace = db.get(Workspace, tenant.workspace_id)
        assert workspace is not None
        workspace.settings = {**(workspace.settings or {}), "caps": {"email": {"day": 1}}}
        db.commit()
    segment_id = make_segment(client, tenant, "Hull", 'city = "Hull"')
    first = make_campaign(
        client, tenant, name="First", channel="email", segment_ids=[segment_id], variants=VARIANTS[:1]
    )
    second = make_campaign(
        client, tenant, name="Second", channel="email", segment_ids=[segment_id], variants=VARIANTS[:1]
    )
    before = call(client, tenant, "GET", f"/api/v1/campaigns/{second['id']}/audience")
    assert (before["reachable"], before["capped"]) == (3, 0)
    call(client, tenant, "POST", f"/api/v1/campaigns/{first['id']}/launch")
    run_worker(app)
    assert len(sink.wait_for(3)) == 3
    after = call(client, tenant, "GET", f"/api/v1/campaigns/{second['id']}/audience")
    assert (after["total"], after["reachable"], after["capped"]) == (3, 0, 3)
