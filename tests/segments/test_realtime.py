"""Real-time membership end to end: events through POST /v1/track and the worker, on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.kit.clock import Clock, FakeClock
from rapport.models import Event
from rapport.runtime import Runtime
from rapport.segments import realtime
from tests.segments.realtime_support import START, members, send
from tests.support.profiles import profile_id
from tests.support.tenants import Tenant


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves."""
    return FakeClock(START)


def _segment(client: TestClient, tenant: Tenant, name: str, text: str) -> int:
    answer = client.post("/api/v1/segments", json={"name": name, "text": text}, headers=tenant.secret_headers)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _timeline(runtime: Runtime, profile_id: int) -> list[tuple[str, dict[str, Any]]]:
    with runtime.read_sessions() as db:
        rows = db.execute(
            select(Event.event, Event.properties)
            .where(Event.profile_id == profile_id, Event.event.like("segment_%"))
            .order_by(Event.id)
        )
        return [(name, props) for name, props in rows]


def test_events_move_profiles_in_and_out_of_segments(
    client: TestClient, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    published: list[realtime.MembershipChange] = []
    realtime.bus_for(runtime).subscribe(lambda _db, changes: published.extend(changes))
    send(client, tenant, clock, "identify", {"userId": "u1", "traits": {"plan": "free"}})
    send(
        client,
        tenant,
        clock,
        "track",
        {"userId": "u2", "event": "order_completed", "properties": {"amount": 5}},
    )
    u1, u2 = profile_id(runtime, tenant, "u1"), profile_id(runtime, tenant, "u2")
    pro = _segment(client, tenant, "Pro", 'plan = "pro"')
    buyers = _segment(client, tenant, "Recent buyers", "purchased in last 7 days")
    big = _segment(client, tenant, "Pro buyers", 'in segment "Pro" and in segment "Recent buyers"')
    assert members(runtime, buyers) == {u2: START}  # the baseline: no entry event
    assert _timeline(runtime, u2) == []

    clock.advance(timedelta(hours=1))
    send(
        client,
        tenant,
        clock,
        "track",
        {"userId": "u1", "event": "order_completed", "properties": {"amount": 9}},
    )
    assert members(runtime, buyers) == {u2: START, u1: START + timedelta(hours=1)}
    assert _timeline(runtime, u1) == [
        ("segment_entered", {"segment_id": buyers, "segment_name": "Recent buyers"})
    ]

    clock.advance(timedelta(hours=1))
    send(client, tenant, clock, "identify", {"userId": "u1", "traits": {"plan": "pro"}})
    assert set(members(runtime, pro)) == {u1}
    assert set(members(runtime, big)) == {u1}  # a segment naming a changed segment follows in the same batch
    send(client, tenant, clock, "identify", {"userId": "u1", "traits": {"plan": "free"}})
    assert members(runtime, pro) == {} and members(runtime, big) == {}
    names = [(name, props["segment_name"]) for name, props in _timeline(runtime, u1)]
    assert names[-2:] == [("segment_exited", "Pro"), ("segment_exited", "Pro buyers")]
    assert [(c.segment_name, c.profile_id, c.kind) for c in published] == [
        ("Recent buyers", u1, "entered"),
        ("Pro", u1, "entered"),
        ("Pro buyers", u1, "entered"),
        ("Pro", u1, "exited"),
        ("Pro buyers", u1, "exited"),
    ]


def test_time_based_members_leave_when_the_window_passes(
    client: TestClient, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    send(client, tenant, clock, "track", {"userId": "u1", "event": "order_completed"})
    u1 = profile_id(runtime, tenant, "u1")
    buyers = _segment(client, tenant, "Recent buyers", "purchased in last 7 days")
    assert set(members(runtime, buyers)) == {u1}
    clock.advance(timedelta(days=6, hours=23))
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    assert set(members(runtime, buyers)) == {u1}
    clock.advance(timedelta(hours=2))  # no new event: the window alone moves past the purchase
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    assert members(runtime, buyers) == {}
    assert [name for name, _ in _timeline(runtime, u1)] == ["segment_exited"]
    with runtime.read_sessions() as db:
        at = db.scalar(select(Event.timestamp).where(Event.event == "segment_exited"))
    assert at == START + timedelta(days=7, hours=1)
