"""Triggered campaigns beyond the basics, at the SMTP sink: a birthday at 09:00 local time each year, and
an event-triggered campaign's control group (held out, with a ``campaign_held_out`` event, never sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.kit.clock import FakeClock
from rapport.runtime import Runtime
from tests.campaigns.conftest import call, event_names, make_campaign, recipients, run_worker
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday, 07:00 UTC


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def test_on_birthday_at_nine_local_time(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    make_people(runtime, tenant, 3, extra={"birthday": "1990-11-23"})
    for user, traits in (
        ("p1", {"birthday": "1985-11-24"}),
        ("p2", {"birthday": "1990-11-23", "timezone": "Asia/Tokyo"}),
    ):
        client.post("/v1/identify", json={"userId": user, "traits": traits}, headers=tenant.write_headers)
    run_worker(app)
    campaign = make_campaign(
        client, tenant, name="Happy birthday", kind="date_relative", channel="email",
        trigger={"type": "date", "trait": "birthday", "offset_days": 0, "at": "09:00", "anniversary": True},
        variants=[{"key": "A", "content": {"subject": "Happy birthday", "text": "{{ occasion.date }} {{ occasion.day }}"}}],
    )  # fmt: skip
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    run_worker(app)
    # 07:00 in London (UTC in November): p0 waits; 16:00 in Tokyo, still the 23rd there: p2's is due
    [tokyo] = sink.wait_for(1)
    assert tokyo.rcpt_tos == ["person2@example.com"]
    clock.set(START + timedelta(hours=1, minutes=59))
    run_worker(app)
    assert len(sink.messages) == 1
    clock.set(START + timedelta(hours=2, minutes=1))
    run_worker(app)
    london = sink.wait_for(2)[1]
    assert london.rcpt_tos == ["person0@example.com"]
    text = london.parsed().get_body(("plain",))
    assert text is not None and text.get_content().strip() == "1990-11-23 2026-11-23"
    clock.set(START + timedelta(days=1, hours=1, minutes=59))
    run_worker(app)
    assert len(sink.messages) == 2  # p1's birthday is the 24th: not before 09:00
    clock.set(START + timedelta(days=1, hours=2, minutes=1))
    run_worker(app)
    assert sink.wait_for(3)[2].rcpt_tos == ["person1@example.com"]
    clock.set(START + timedelta(days=2, hours=3))
    run_worker(app)
    assert len(sink.messages) == 3  # once per occurrence


def test_a_triggered_campaigns_control_group_is_held_out(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    people = make_people(runtime, tenant, 30)
    campaign = make_campaign(
        client, tenant, name="Thanks", kind="triggered", channel="email", control_percent=30,
        trigger={"type": "event", "event": "order_completed"},
        variants=[{"key": "A", "content": {"subject": "Thanks", "text": "t"}}],
    )  # fmt: skip
    cid = campaign["id"]
    call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")
    batch = [{"type": "track", "userId": f"p{i}", "event": "order_completed"} for i in range(30)]
    assert client.post("/v1/batch", json={"batch": batch}, headers=tenant.write_headers).status_code == 200
    run_worker(app)
    entries = recipients(runtime, cid)
    control = {pid for pid, e in entries.items() if e.state == "held_out"}
    assert len(entries) == 30 and 3 <= len(control) <= 18
    received = sink.wait_for(30 - len(control))
    addresses = {f"person{i}@example.com": pid for i, pid in enumerate(people)}
    assert {addresses[m.rcpt_tos[0]] for m in received} == set(people) - control
    for pid in people:
        assert ("campaign_held_out" in event_names(runtime, pid)) == (pid in control)
    stats = call(client, tenant, "GET", f"/api/v1/campaigns/{cid}/stats")
    assert stats["control"]["recipients"] == len(control)
