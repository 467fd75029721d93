"""The real-time path reuses its compile scope between batches only while the definitions behind it hold."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.campaigns import service as campaigns_service
from rapport.campaigns.schemas import CampaignCreate
from rapport.kit.clock import Clock, FakeClock
from rapport.models import Event
from rapport.process import traits_service
from rapport.runtime import Runtime
from rapport.segments import realtime
from rapport.segments import repository as segments_repository
from tests.segments.realtime_support import START, make_segment, members, send
from tests.support.profiles import profile_id
from tests.support.tenants import Tenant


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves."""
    return FakeClock(START)


def test_a_new_definition_takes_effect_on_the_next_batch_within_the_reuse_window(
    client: TestClient, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    pro = make_segment(client, tenant, "Pro", 'plan = "pro"')
    send(client, tenant, clock, "identify", {"userId": "u1", "traits": {"plan": "pro"}})
    u1 = profile_id(runtime, tenant, "u1")
    assert set(members(runtime, pro)) == {u1}  # the real-time scope is built and held now
    with runtime.sessions() as db:
        traits_service.create_definition(
            db,
            workspace_id=tenant.workspace_id,
            name="recent_views",
            event="Viewed",
            aggregation="count",
            window_days=7,
            now=clock.now(),
        )
        db.commit()
    viewers = make_segment(client, tenant, "Viewers", "recent_views >= 1")
    assert set(members(runtime, viewers)) == set()
    clock.advance(timedelta(minutes=1))
    send(client, tenant, clock, "track", {"userId": "u1", "event": "Viewed"})
    # a held scope without the windowed trait would read "recent_views" as a plain trait: no entry
    assert set(members(runtime, viewers)) == {u1}
    with runtime.read_sessions() as db:
        entries = db.scalars(
            select(Event.event).where(Event.profile_id == u1, Event.event == "segment_entered")
        ).all()
    assert len(entries) == 2  # Pro, then Viewers: each entry recorded once


def test_the_scope_is_reused_until_definitions_change_or_the_window_ends(
    runtime: Runtime, tenant: Tenant, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tenant.workspace_id
    with runtime.sessions() as db:
        segments = segments_repository.list_segments(db, workspace_id=ws)
        first = realtime.realtime_scope(db, runtime, workspace_id=ws, now=clock.now(), segments=segments)
        again = realtime.realtime_scope(db, runtime, workspace_id=ws, now=clock.now(), segments=segments)
        assert again.catalog is first.catalog and again.per_profile
        traits_service.create_definition(
            db, workspace_id=ws, name="week_orders", event="Order", aggregation="count", window_days=7,
            now=clock.now(),
        )  # fmt: skip
        db.flush()
        changed = realtime.realtime_scope(db, runtime, workspace_id=ws, now=clock.now(), segments=segments)
        assert changed.catalog is not first.catalog
        assert changed.catalog is not None and "week_orders" in changed.catalog.computed
        assert changed.computed is not None and changed.computed("week_orders", Event.profile_id, clock.now())
        monkeypatch.setattr(realtime, "SCOPE_REUSE_SECONDS", 0.0)
        fresh = realtime.realtime_scope(db, runtime, workspace_id=ws, now=clock.now(), segments=segments)
        assert fresh.catalog is not changed.catalog  # the sampled keys are taken again after the window
        assert fresh.catalog == changed.catalog


def test_a_segment_naming_a_campaign_still_resolves_it_in_real_time(
    client: TestClient, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    with runtime.sessions() as db:
        spring = campaigns_service.create_campaign(
            db,
            workspace_id=tenant.workspace_id,
            actor="test",
            now=clock.now(),
            data=CampaignCreate(
                name="Spring sale",
                kind="triggered",
                channel="email",
                trigger={"type": "event", "event": "Never sent"},
                variants=[{"key": "A", "content": {"subject": "Hi", "text": "Sale"}}],
            ),
        )
        db.commit()
        spring_id = spring.id
    clickers = make_segment(client, tenant, "Clickers", 'email.clicked campaign "Spring sale"')
    plain = make_segment(client, tenant, "Pro", 'plan = "pro"')
    send(client, tenant, clock, "identify", {"userId": "u1", "traits": {"plan": "pro"}})
    u1 = profile_id(runtime, tenant, "u1")
    assert set(members(runtime, plain)) == {u1} and set(members(runtime, clickers)) == set()
    send(
        client,
        tenant,
        clock,
        "track",
        {"userId": "u1", "event": "email_clicked", "properties": {"campaign_id": 0}},
    )
    assert set(members(runtime, clickers)) == set()  # another campaign's click
    send(
        client, tenant, clock, "track",
        {"userId": "u1", "event": "email_clicked", "properties": {"campaign_id": spring_id}},
    )  # fmt: skip
    assert set(members(runtime, clickers)) == {u1}
