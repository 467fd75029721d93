"""A broadcast's rollout through the worker, at the SMTP sink: the test phase decided by the worker itself
(Thompson sampling) and the winner sent to the rest, or not; exclusion segments; throttling; an audience
frozen when the send starts; opens and clicks counted per arm."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def _addresses(people: list[int]) -> dict[int, str]:
    return {pid: f"person{i}@example.com" for i, pid in enumerate(people)}


@pytest.mark.parametrize("send_winner", [True, False])
def test_the_worker_picks_the_winner_by_thompson_sampling_after_the_test_phase(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
    send_winner: bool,
) -> None:
    people = make_people(runtime, tenant, 40, extra={"city": "Leeds"})
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    campaign = make_campaign(
        client, tenant, name="Thompson", channel="email", segment_ids=[segment_id],
        variants=[{"key": "A", "content": {"subject": "Subject A", "text": "a"}},
                  {"key": "B", "content": {"subject": "Subject B", "text": "b"}}],
        experiment={"test_percent": 50, "method": "thompson", "test_hours": 2, "send_winner": send_winner},
    )  # fmt: skip
    cid = campaign["id"]
    call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")
    run_worker(app)
    entries = recipients(runtime, cid)
    tested = {pid: e.variant for pid, e in entries.items() if e.state == "queued"}
    waiting = [pid for pid, e in entries.items() if e.state == "waiting"]
    assert set(tested.values()) == {"A", "B"} and len(waiting) >= 10
    assert len(sink.wait_for(len(tested))) == len(tested)
    # every B recipient buys, no A recipient does: B is best with a posterior probability close to 1
    index = {pid: i for i, pid in enumerate(people)}
    batch = [{"type": "track", "userId": f"p{index[pid]}", "event": "order_completed", "properties": {"total": 10}}
             for pid, arm in tested.items() if arm == "B"]  # fmt: skip
    assert client.post("/v1/batch", json={"batch": batch}, headers=tenant.write_headers).status_code == 200
    clock.advance(timedelta(hours=1))
    run_worker(app)
    assert call(client, tenant, "GET", f"/api/v1/campaigns/{cid}")["status"] == "testing"  # phase not over

    clock.advance(timedelta(hours=1, minutes=1))
    run_worker(app)  # nobody asks: the worker's campaign tick decides
    decided = call(client, tenant, "GET", f"/api/v1/campaigns/{cid}")
    assert decided["winner_variant"] == "B"
    addresses = _addresses(people)
    if send_winner:
        received = sink.wait_for(len(tested) + len(waiting))
        subjects = {m.rcpt_tos[0]: m.parsed()["Subject"] for m in received}
        assert all(subjects[addresses[pid]] == "Subject B" for pid in waiting)
        assert decided["status"] in {"sending", "sent"}
        run_worker(app)
        assert call(client, tenant, "GET", f"/api/v1/campaigns/{cid}")["status"] == "sent"
    else:
        assert len(sink.messages) == len(tested)  # the rest never hear from this campaign
        assert decided["status"] == "sent"
        assert {e.state for pid, e in recipients(runtime, cid).items() if pid in waiting} == {"waiting"}


def test_exclusion_segments_and_throttling(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    people = make_people(runtime, tenant, 4, extra={"city": "Leeds", "vip": False})
    client.post("/v1/identify", json={"userId": "p3", "traits": {"vip": True}}, headers=tenant.write_headers)
    run_worker(app)
    leeds = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    vip = make_segment(client, tenant, "VIP", "vip = true")
    campaign = make_campaign(client, tenant, name="Not VIPs", channel="email", segment_ids=[leeds],
                             exclude_segment_ids=[vip], throttle_per_hour=2,
                             variants=[{"key": "A", "content": {"subject": "Hi", "text": "t"}}])  # fmt: skip
    cid = campaign["id"]
    assert call(client, tenant, "GET", f"/api/v1/campaigns/{cid}/audience")["total"] == 3
    call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")
    run_worker(app)
    assert sorted(recipients(runtime, cid)) == sorted(people[:3])  # p3 is in the exclusion segment
    run_at = sorted(m.run_at.replace(tzinfo=UTC) for m in campaign_messages(runtime, cid))
    assert run_at == [START, START + timedelta(minutes=30), START + timedelta(hours=1)]  # 2 an hour
    assert len(sink.wait_for(1)) == 1
    clock.advance(timedelta(minutes=31))
    run_worker(app)
    assert len(sink.wait_for(2)) == 2
    clock.advance(timedelta(minutes=30))
    run_worker(app)
    received = sink.wait_for(3)
    assert sorted(m.rcpt_tos[0] for m in received) == [f"person{i}@example.com" for i in range(3)]


def test_the_audience_is_frozen_when_the_send_starts(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    make_people(runtime, tenant, 3, extra={"city": "York"})
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')

    def move(user: str, city: str) -> None:
        answer = client.post("/v1/identify", json={"userId": user, "traits": {"city": city}},
                             headers=tenant.write_headers)  # fmt: skip
        assert answer.status_code == 200

    move("p0", "Leeds")
    move("p1", "Leeds")
    run_worker(app)
    campaign = make_campaign(client, tenant, name="Frozen", channel="email", segment_ids=[segment_id],
                             throttle_per_hour=1,
                             variants=[{"key": "A", "content": {"subject": "Hi", "text": "t"}}])  # fmt: skip
    cid = campaign["id"]
    call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")
    run_worker(app)
    assert len(sink.wait_for(1)) == 1  # one an hour: the second waits
    # while it is sending, p2 joins the segment and p1 leaves it: the audience was fixed when the send started
    move("p2", "Leeds")
    move("p1", "York")
    run_worker(app)
    clock.advance(timedelta(hours=1, minutes=1))
    run_worker(app)
    received = sink.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in received) == ["person0@example.com", "person1@example.com"]
    clock.advance(timedelta(hours=2))
    run_worker(app)
    assert len(sink.messages) == 2
    assert call(client, tenant, "GET", f"/api/v1/campaigns/{cid}")["audience_size"] == 2


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_opens_and_clicks_are_counted_per_arm(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    app: FastAPI,
    sink: SmtpSink,
    email_channel: object,
    clock: FakeClock,
) -> None:
    make_people(runtime, tenant, 12, extra={"city": "Leeds"})
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    html = (
        '<html><body><p>{{ campaign.variant }}</p><a href="https://shop.example/sale">Sale</a></body></html>'
    )
    campaign = make_campaign(client, tenant, name="Opens", channel="email", segment_ids=[segment_id],
                             variants=[{"key": "A", "content": {"subject": "A", "html": html}},
                                       {"key": "B", "content": {"subject": "B", "html": html}}])  # fmt: skip
    cid = campaign["id"]
    call(client, tenant, "POST", f"/api/v1/campaigns/{cid}/launch")
    run_worker(app)
    opened = {"A": 0, "B": 0}
    clicked = {"A": 0, "B": 0}
    for n, received in enumerate(sink.wait_for(12)):
        arm = received.parsed()["Subject"]
        body = received.parsed().get_body(("html",))
        assert body is not None
        content = str(body.get_content())
        [pixel] = re.findall(r'<img src="([^"]+)"', content)
        [link] = [h for h in re.findall(r'href="([^"]+)"', content) if "/t/c/" in h]
        if n % 2 == 0:  # every other message is opened, every third of those clicked through
            assert client.get(_path(pixel)).status_code == 200
            opened[arm] += 1
            if n % 3 == 0:
                assert client.get(_path(link), follow_redirects=False).status_code == 302
                clicked[arm] += 1
    run_worker(app)
    stats = call(client, tenant, "GET", f"/api/v1/campaigns/{cid}/stats")
    by_arm = {a["key"]: a for a in stats["arms"]}
    assert {k: by_arm[k]["opened"] for k in "AB"} == opened and sum(opened.values()) == 6
    assert {k: by_arm[k]["clicked"] for k in "AB"} == clicked and sum(clicked.values()) == 2
    assert {k: by_arm[k]["sent"] for k in "AB"} == {
        k: sum(1 for m in campaign_messages(runtime, cid) if m.variant == k) for k in "AB"
    }
