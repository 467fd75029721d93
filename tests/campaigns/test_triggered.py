"""Triggered and date-relative campaigns end to end: an ingested event with property conditions, a
segment entry, and a date trait coming round with a fake clock, each reaching the SMTP sink once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.collect.import_files import import_file
from rapport.kit.clock import FakeClock
from rapport.runtime import Runtime
from tests.campaigns.conftest import call, make_campaign, make_segment, recipients, run_worker
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 07:00 in London (GMT in November)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def _track(client: TestClient, tenant: Tenant, user: str, event: str, **properties: object) -> None:
    response = client.post(
        "/v1/track",
        json={"userId": user, "event": event, "properties": properties, "timestamp": START.isoformat()},
        headers=tenant.write_headers,
    )
    assert response.status_code == 200, response.text


def test_an_event_with_property_conditions_triggers_one_message(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    people = make_people(runtime, tenant, 3)
    campaign = make_campaign(
        client,
        tenant,
        name="Big order thanks",
        kind="triggered",
        channel="email",
        trigger={"type": "event", "event": "order_completed", "where": "total > 100"},
        variants=[
            {
                "key": "A",
                "content": {
                    "subject": "Thanks {{ first_name }}",
                    "html": "<p>You spent {{ event.properties.total }} with us.</p>",
                },
            }
        ],
    )
    cid = campaign["id"]
    # not live yet: an event before launch triggers nothing
    _track(client, tenant, "p2", "order_completed", total=500)
    run_worker(app)
    assert call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")["status"] == "active"

    _track(client, tenant, "p0", "order_completed", total=150)
    _track(client, tenant, "p1", "order_completed", total=50)
    _track(client, tenant, "p1", "page_viewed", total=900)
    run_worker(app)
    [received] = sink.wait_for(1)
    assert received.rcpt_tos == ["person0@example.com"]
    parsed = received.parsed()
    assert parsed["Subject"] == "Thanks Person0"
    html = parsed.get_body(("html",))
    assert html is not None and "You spent 150 with us." in str(html.get_content())

    # re-entry "once": a second qualifying order sends nothing more
    _track(client, tenant, "p0", "order_completed", total=300)
    run_worker(app)
    assert len(sink.messages) == 1
    assert set(recipients(runtime, cid)) == {people[0]}


def test_reentry_every_n_days(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    make_people(runtime, tenant, 1)
    campaign = make_campaign(
        client,
        tenant,
        name="Browse reminder",
        kind="triggered",
        channel="email",
        trigger={"type": "event", "event": "product_viewed"},
        reentry="every",
        reentry_days=7,
        variants=[{"key": "A", "content": {"subject": "Still looking?", "text": "Come back"}}],
    )
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    for day in (0, 3, 8):
        clock.set(START + timedelta(days=day))
        client.post(
            "/v1/track",
            json={"userId": "p0", "event": "product_viewed", "timestamp": clock.now().isoformat()},
            headers=tenant.write_headers,
        )
        run_worker(app)
    assert len(sink.wait_for(2)) == 2  # day 0 and day 8; day 3 is inside the 7 days


def test_segment_entry_triggers_a_delayed_message(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    make_people(runtime, tenant, 2, extra={"is_vip": False})
    segment_id = make_segment(client, tenant, "VIP", "is_vip = true")
    campaign = make_campaign(
        client,
        tenant,
        name="Welcome to VIP",
        kind="triggered",
        channel="email",
        trigger={"type": "segment_entry", "segment_id": segment_id},
        delay_seconds=3600,
        variants=[{"key": "A", "content": {"subject": "Welcome, VIP", "text": "Hi {{ first_name }}"}}],
    )
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    response = client.post(
        "/v1/identify", json={"userId": "p1", "traits": {"is_vip": True}}, headers=tenant.write_headers
    )
    assert response.status_code == 200
    run_worker(app)
    assert sink.messages == []  # an hour's delay
    clock.advance(timedelta(minutes=61))
    run_worker(app)
    [received] = sink.wait_for(1)
    assert received.rcpt_tos == ["person1@example.com"]


def test_date_relative_sends_at_local_time_once_per_occurrence(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    ends = (START.date() + timedelta(days=30)).isoformat()
    later = (START.date() + timedelta(days=31)).isoformat()
    people = make_people(runtime, tenant, 2, extra={"contract_end": ends})
    client.post(
        "/v1/identify", json={"userId": "p1", "traits": {"contract_end": later}}, headers=tenant.write_headers
    )
    run_worker(app)
    campaign = make_campaign(
        client,
        tenant,
        name="Renewal",
        kind="date_relative",
        channel="email",
        trigger={"type": "date", "trait": "contract_end", "offset_days": -30, "at": "09:00"},
        variants=[
            {
                "key": "A",
                "content": {
                    "subject": "Your contract ends on {{ profile.contract_end }}",
                    "text": "Renew now",
                },
            }
        ],
    )
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    run_worker(app)  # 07:00: p0 enters, its message waits for 09:00 local
    entries = recipients(runtime, campaign["id"])
    assert set(entries) == {people[0]}
    assert sink.messages == []
    clock.set(START + timedelta(hours=2, minutes=1))
    run_worker(app)
    [received] = sink.wait_for(1)
    assert received.rcpt_tos == ["person0@example.com"]
    assert received.parsed()["Subject"] == f"Your contract ends on {ends}"
    # later scans the same day admit nobody again; the next day p1's date comes round
    clock.set(START + timedelta(hours=5))
    run_worker(app)
    assert len(sink.messages) == 1
    clock.set(START + timedelta(days=1, hours=3))
    run_worker(app)
    assert [m.rcpt_tos for m in sink.wait_for(2)] == [["person0@example.com"], ["person1@example.com"]]


def test_late_and_imported_events_older_than_the_max_age_do_not_fire(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    tmp_path: Path,
) -> None:
    people = make_people(runtime, tenant, 3)
    campaign = make_campaign(client, tenant, name="Thanks", kind="triggered", channel="email",
                             trigger={"type": "event", "event": "order_completed", "max_age_hours": 6},
                             variants=[{"key": "A", "content": {"subject": "Thanks", "text": "t"}}])  # fmt: skip
    cid = campaign["id"]
    assert campaign["trigger"]["max_age_hours"] == 6
    call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")
    # last year's orders arrive through an import, and a phone that was offline for a day flushes its queue
    history = tmp_path / "orders.jsonl"
    history.write_text(
        json.dumps({"type": "track", "userId": "p0", "event": "order_completed",
                    "timestamp": (START - timedelta(days=300)).isoformat()}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    import_file(runtime, workspace_id=tenant.workspace_id, path=history, kind="events")
    late = {"userId": "p1", "event": "order_completed", "timestamp": (START - timedelta(hours=7)).isoformat()}
    assert client.post("/v1/track", json=late, headers=tenant.write_headers).status_code == 200
    recent = {
        "userId": "p2",
        "event": "order_completed",
        "timestamp": (START - timedelta(hours=5)).isoformat(),
    }
    assert client.post("/v1/track", json=recent, headers=tenant.write_headers).status_code == 200
    run_worker(app)
    [received] = sink.wait_for(1)
    assert received.rcpt_tos == ["person2@example.com"]
    assert set(recipients(runtime, cid)) == {people[2]}
    bad = client.post("/api/v1/campaigns", headers=tenant.secret_headers, json={
        "name": "x", "kind": "triggered", "channel": "email", "variants": [{"key": "A", "content": {"text": "t"}}],
        "trigger": {"type": "event", "event": "e", "max_age_hours": 0}})  # fmt: skip
    assert bad.status_code in (400, 422) and "max_age_hours" in bad.text
