"""Campaign lifecycle through the API: validation, scheduling, pause/resume/cancel at claim time, an
A/B/n test phase with a winner sent to the rest, a failing render isolated to its message (R22), and the
test send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.campaigns.tasks import CampaignTick
from rapport.kit.clock import FakeClock
from rapport.runtime import Runtime
from tests.campaigns.conftest import (
    call,
    campaign_messages,
    make_campaign,
    make_segment,
    recipients,
    run_worker,
)
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
EMAIL = {"key": "A", "content": {"subject": "Hello {{ first_name }}", "text": "Hi"}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def test_bad_campaigns_are_refused_with_the_field(
    runtime: Runtime, tenant: Tenant, client: TestClient
) -> None:
    make_people(runtime, tenant, 1, extra={"city": "Leeds"})
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')

    def refused(body: dict[str, object], status: int = 400) -> dict[str, object]:
        response = client.post("/api/v1/campaigns", json=body, headers=tenant.secret_headers)
        assert response.status_code == status, response.text
        return dict(response.json()["error"])

    base: dict[str, object] = {
        "name": "X",
        "channel": "email",
        "segment_ids": [segment_id],
        "variants": [EMAIL],
    }
    assert refused({**base, "segment_ids": []})["message"] == "a broadcast needs at least one segment"
    assert refused({**base, "segment_ids": [9999]})["details"] == {"field": "segment_ids"}
    error = refused({**base, "variants": [{"key": "A", "content": {"text": "no subject"}}]})
    assert error["message"] == "variant A needs subject"
    assert "reserved" in str(refused({**base, "variants": [{**EMAIL, "key": "control"}]})["message"])
    assert "unique" in str(refused({**base, "variants": [EMAIL, EMAIL]})["message"])
    assert refused({**base, "variants": [{"key": "A", "template_id": 12345}]})["details"] == {
        "field": "variants"
    }
    error = refused({**base, "kind": "triggered", "segment_ids": [], "trigger": {"type": "event", "event": "x",
                                                                              "where": "total >"}})  # fmt: skip
    assert error["details"] == {"field": "trigger.where"} and "line 1" in str(error["message"])
    assert refused({**base, "topic": "nope"})["message"] == "unknown topic nope"
    assert refused({**base, "kind": "date_relative", "segment_ids": []})["details"] == {"field": "trigger"}
    call(client, tenant, "POST", "/api/v1/campaigns", json=base)
    assert refused(base, status=409)["message"] == "a campaign named 'X' exists already"


def test_a_scheduled_broadcast_starts_at_its_time_and_a_local_time_send_waits_per_zone(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    people = make_people(runtime, tenant, 2, extra={"city": "Leeds"})
    client.post("/v1/identify", json={"userId": "p1", "traits": {"timezone": "Asia/Tokyo"}},
                headers=tenant.write_headers)  # fmt: skip
    run_worker(app)
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    send_at = START + timedelta(hours=1)
    campaign = make_campaign(
        client,
        tenant,
        name="Morning note",
        channel="email",
        segment_ids=[segment_id],
        variants=[EMAIL],
        send_at=send_at.isoformat(),
        local_time="12:00",
    )
    cid = campaign["id"]
    assert call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")["status"] == "scheduled"
    run_worker(app)
    assert recipients(runtime, cid) == {}  # not frozen before its time
    clock.set(send_at)
    run_worker(app)
    runs = {m.profile_id: m.run_at for m in campaign_messages(runtime, cid)}
    # 12:00 London (GMT) today; 12:00 Tokyo (UTC+9) is 03:00 UTC tomorrow
    assert runs == {
        people[0]: datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        people[1]: datetime(2026, 11, 24, 3, 0, tzinfo=UTC),
    }
    clock.set(datetime(2026, 11, 23, 12, 1, tzinfo=UTC))
    run_worker(app)
    assert [m.rcpt_tos for m in sink.wait_for(1)] == [["person0@example.com"]]


def test_pause_holds_queued_messages_resume_sends_them_and_cancel_drops_the_rest(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    make_people(runtime, tenant, 6, extra={"city": "Leeds"})
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    first = make_campaign(
        client, tenant, name="One", channel="email", segment_ids=[segment_id], variants=[EMAIL]
    )
    second = make_campaign(
        client, tenant, name="Two", channel="email", segment_ids=[segment_id], variants=[EMAIL]
    )
    tick = CampaignTick(runtime)
    for campaign in (first, second):
        call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    tick()  # both audiences queued in the outbox, nothing delivered yet
    assert len(campaign_messages(runtime, first["id"])) == len(campaign_messages(runtime, second["id"])) == 6
    for campaign in (first, second):
        assert call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/pause")["status"] == "paused"
    run_worker(app)
    assert sink.messages == []
    held = campaign_messages(runtime, first["id"])
    assert {m.status for m in held} == {"queued"}
    assert all((m.status_reason or "").startswith("campaign paused: paused by key:") for m in held)

    assert call(client, tenant, "POST", f"/api/v1/campaigns/{first['id']}/resume")["status"] == "sending"
    assert call(client, tenant, "POST", f"/api/v1/campaigns/{second['id']}/cancel")["status"] == "cancelled"
    clock.advance(timedelta(minutes=16))  # held rows are looked at again after the pause re-check
    run_worker(app)
    assert len(sink.wait_for(6)) == 6
    assert {m.status for m in campaign_messages(runtime, first["id"])} == {"sent"}
    dropped = campaign_messages(runtime, second["id"])
    assert {m.status for m in dropped} == {"skipped"}
    assert all((m.status_reason or "").startswith("campaign cancelled") for m in dropped)
    response = client.post(f"/api/v1/campaigns/{second['id']}/resume", headers=tenant.secret_headers)
    assert response.status_code == 409


def test_an_ab_test_phase_picks_the_winner_and_sends_it_to_the_rest(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    people = make_people(runtime, tenant, 60, extra={"city": "Leeds"})
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    campaign = make_campaign(
        client,
        tenant,
        name="Subject test",
        channel="email",
        segment_ids=[segment_id],
        variants=[
            {"key": "A", "content": {"subject": "Subject A", "text": "a"}},
            {"key": "B", "content": {"subject": "Subject B", "text": "b"}},
        ],
        experiment={"test_percent": 40, "metric": "conversion", "test_hours": 4},
    )
    cid = campaign["id"]
    call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")
    run_worker(app)
    entries = recipients(runtime, cid)
    tested = {pid: e.variant for pid, e in entries.items() if e.state == "queued"}
    waiting = [pid for pid, e in entries.items() if e.state == "waiting"]
    assert tested and waiting and set(tested.values()) == {"A", "B"}
    assert call(client, tenant, "GET", f"/api/v1/campaigns/{cid}")["status"] == "testing"
    assert len(sink.wait_for(len(tested))) == len(tested)

    index = {pid: i for i, pid in enumerate(people)}
    batch = [{"type": "track", "userId": f"p{index[pid]}", "event": "order_completed", "properties": {"total": 10}}
             for pid, arm in tested.items() if arm == "B"]  # fmt: skip
    assert client.post("/v1/batch", json={"batch": batch}, headers=tenant.write_headers).status_code == 200
    run_worker(app)
    decided = call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/decide")
    assert decided["winner_variant"] == "B" and decided["status"] == "sending"
    run_worker(app)
    received = sink.wait_for(len(tested) + len(waiting))
    subjects = {m.rcpt_tos[0]: m.parsed()["Subject"] for m in received}
    for pid in waiting:
        assert subjects[f"person{index[pid]}@example.com"] == "Subject B"
    assert call(client, tenant, "GET", f"/api/v1/campaigns/{cid}")["status"] == "sent"
    response = client.post(f"/api/v1/campaigns/{cid}/decide", headers=tenant.secret_headers)
    assert response.status_code == 409


def test_a_failing_render_fails_only_its_message(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    make_people(runtime, tenant, 4, extra={"city": "Leeds"})
    client.post(
        "/v1/identify", json={"userId": "p2", "traits": {"n": 10_000_000}}, headers=tenant.write_headers
    )
    run_worker(app)
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    # a loop as long as a trait says: huge for p2 only, so the R22 limits stop that one render
    text = "Hello {% for i in (1..profile.n) %}x{% endfor %}"
    campaign = make_campaign(client, tenant, name="Loop", channel="email", segment_ids=[segment_id],
                             variants=[{"key": "A", "content": {"subject": "Hi", "text": text}}])  # fmt: skip
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    run_worker(app)
    assert len(sink.wait_for(3)) == 3
    statuses = sorted((m.status, m.status_reason or "") for m in campaign_messages(runtime, campaign["id"]))
    assert [s for s, _ in statuses] == ["dead", "sent", "sent", "sent"]
    assert statuses[0][1].startswith("render failed")


def test_a_test_send_goes_to_the_seed_addresses_only(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    [pid] = make_people(runtime, tenant, 1, extra={"city": "Leeds"})
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    campaign = make_campaign(
        client,
        tenant,
        name="Seeded",
        channel="email",
        segment_ids=[segment_id],
        variants=[EMAIL, {"key": "B", "content": {"subject": "Other {{ first_name }}", "text": "b"}}],
        seed_addresses=["qa@hartley.example"],
    )
    result = call(
        client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/test", json={"profile_id": pid}
    )
    assert [(r["variant"], r["address"], r["status"]) for r in result["results"]] == [
        ("A", "qa@hartley.example", "sent"),
        ("B", "qa@hartley.example", "sent"),
    ]
    subjects = sorted(m.parsed()["Subject"] for m in sink.wait_for(2))
    assert subjects == ["[TEST] Hello Person0", "[TEST] Other Person0"]
    assert campaign_messages(runtime, campaign["id"]) == []  # nothing queued, nothing counted
    assert call(client, tenant, "GET", f"/api/v1/campaigns/{campaign['id']}")["status"] == "draft"
