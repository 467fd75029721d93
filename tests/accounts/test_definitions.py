"""The workspace's definitions revision (migration 0014's triggers) and what the event processor keeps under it
(rapport.accounts.definitions): kept while nothing changes, read again as soon as a definition does."""

# ruff: noqa: S608  (statements built from the constant column names of the test)
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from rapport.accounts import definitions
from rapport.campaigns import service as campaigns_service
from rapport.campaigns.schemas import CampaignCreate
from rapport.collect.processor import Processor
from rapport.consent import service as consent_service
from rapport.content import service as content_service
from rapport.content.schemas import SnippetCreate, TemplateCreate
from rapport.kit.clock import Clock, FakeClock
from rapport.models import CampaignRecipient, CampaignVariant, Identity, Message, Workspace
from rapport.process import traits_service
from rapport.runtime import Runtime
from rapport.segments import service as segments_service
from rapport.segments.schemas import SegmentCreate
from tests.segments.realtime_support import START, make_segment, members, send
from tests.support.profiles import profile_id
from tests.support.statements import statements
from tests.support.tenants import Tenant, make_tenant


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves."""
    return FakeClock(START)


def _rev(runtime: Runtime, workspace_id: int) -> int:
    with runtime.read_sessions() as db:
        return int(db.scalar(select(Workspace.definitions_rev).where(Workspace.id == workspace_id)) or 0)


def _moves(runtime: Runtime, workspace_id: int, sql: str, **params: Any) -> bool:
    """Run ``sql`` in its own transaction; tell whether it moved the workspace's revision."""
    before = _rev(runtime, workspace_id)
    with runtime.sessions() as db:
        db.execute(text(sql), params)
        db.commit()
    return _rev(runtime, workspace_id) != before


def test_definition_changes_move_the_revision_and_counters_do_not(
    runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    ws = tenant.workspace_id
    other = make_tenant(runtime, "other-workspace")
    other_before = _rev(runtime, other.workspace_id)
    start = _rev(runtime, ws)
    with runtime.sessions() as db:
        segment = segments_service.create_segment(
            db,
            workspace_id=ws,
            data=SegmentCreate(name="Pro", text='plan = "pro"'),
            actor="t",
            now=clock.now(),
        )
        campaign = campaigns_service.create_campaign(
            db, workspace_id=ws, actor="t", now=clock.now(),
            data=CampaignCreate(name="Welcome", kind="triggered", channel="email",
                                trigger={"type": "event", "event": "Signed up"},
                                variants=[{"key": "A", "content": {"subject": "Hi", "text": "Hello"}}]),
        )  # fmt: skip
        trait = traits_service.create_definition(
            db, workspace_id=ws, name="orders", event="Order", aggregation="count", now=clock.now()
        )
        topic = consent_service.create_topic(db, workspace_id=ws, key="news", name="News", actor="t")
        db.commit()
        sid, cid, tid, topic_id = segment.id, campaign.id, trait.id, topic.id
    assert _rev(runtime, ws) >= start + 4  # each insert moved it

    # a segment: what evaluation reads moves it; the counters the processor writes every batch do not
    for column in ("name", "ast", "text", "version", "status", "seed", "by_time", "archived_at"):
        assert _moves(runtime, ws, f"UPDATE segments SET {column} = {column} WHERE id = :id", id=sid), column
    for column in ("member_count", "refreshed_at", "description", "updated_at", "created_by"):
        assert not _moves(runtime, ws, f"UPDATE segments SET {column} = {column} WHERE id = :id", id=sid), (
            column
        )
    # a campaign: any column (its triggers' read, its entry plan: arms, contents, delays), its variants,
    # templates and snippets
    for column in ("kind", "status", '"trigger"', "name", "control_percent", "delay_seconds"):
        assert _moves(runtime, ws, f"UPDATE campaigns SET {column} = {column} WHERE id = :id", id=cid), column
    assert _moves(
        runtime, ws, "UPDATE campaign_variants SET content = content WHERE campaign_id = :id", id=cid
    )
    with runtime.sessions() as db:
        template, _report = content_service.create_template(
            db, workspace_id=ws, data=TemplateCreate(name="T", channel="email", content={"subject": "S", "text": "x"}),
            actor="t", now=clock.now(),
        )  # fmt: skip
        snippet, _report = content_service.create_snippet(
            db, workspace_id=ws, data=SnippetCreate(name="footer", source="Bye"), actor="t", now=clock.now()
        )
        db.commit()
        template_id, snippet_id = template.id, snippet.id
    assert _moves(
        runtime, ws, "UPDATE message_templates SET content = content WHERE id = :id", id=template_id
    )
    assert _moves(runtime, ws, "UPDATE snippets SET source = 'Ciao' WHERE id = :id", id=snippet_id)
    # computed traits and topics: any change
    assert _moves(runtime, ws, "UPDATE computed_traits SET description = 'x' WHERE id = :id", id=tid)
    assert _moves(runtime, ws, "UPDATE topics SET opt_in = opt_in WHERE id = :id", id=topic_id)
    # the workspace's own settings, region and zone; not its name
    for column in ("settings", "default_region", "timezone"):
        assert _moves(runtime, ws, f"UPDATE workspaces SET {column} = {column} WHERE id = :id", id=ws), column
    assert not _moves(runtime, ws, "UPDATE workspaces SET name = 'Renamed' WHERE id = :id", id=ws)
    # deletions
    deleted = (
        ("segments", sid), ("computed_traits", tid), ("topics", topic_id), ("campaign_variants", None),
        ("campaigns", cid), ("message_templates", template_id), ("snippets", snippet_id),
    )  # fmt: skip
    for table, row in deleted:
        if row is None:  # the variants of the campaign
            assert _moves(runtime, ws, "DELETE FROM campaign_variants WHERE campaign_id = :id", id=cid), table
            continue
        assert _moves(runtime, ws, f"DELETE FROM {table} WHERE id = :id", id=row), table
    assert _rev(runtime, other.workspace_id) == other_before  # another workspace's counter never moves


def _processed(
    client: TestClient,
    runtime: Runtime,
    tenant: Tenant,
    clock: FakeClock,
    body: dict[str, Any],
    kind: str = "identify",
) -> list[str]:
    """Send one call and run the event processor alone on it; return the statements it sent."""
    answer = client.post(
        f"/v1/{kind}", json={**body, "timestamp": clock.now().isoformat()}, headers=tenant.write_headers
    )
    assert answer.status_code == 200, answer.text
    with statements(runtime) as seen:
        assert Processor(runtime).drain() == 1
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    return seen


def _reads(seen: list[str], table: str) -> int:
    return sum(1 for s in seen if s.lstrip().upper().startswith("SELECT") and f"FROM {table} " in s + " ")


def test_a_batch_reads_the_definitions_again_only_once_they_changed(
    client: TestClient, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    with runtime.sessions() as db:
        traits_service.create_definition(
            db, workspace_id=tenant.workspace_id, name="orders", event="Order", aggregation="count",
            now=clock.now(),
        )  # fmt: skip
        db.commit()
    pro = make_segment(client, tenant, "Pro", 'plan = "pro"')
    send(client, tenant, clock, "identify", {"userId": "u1", "traits": {"plan": "pro"}})
    u1 = profile_id(runtime, tenant, "u1")
    assert set(members(runtime, pro)) == {u1}

    seen = _processed(client, runtime, tenant, clock, {"userId": "u2", "traits": {"plan": "pro"}})
    u2 = profile_id(runtime, tenant, "u2")
    assert set(members(runtime, pro)) == {u1, u2}  # evaluated with the kept definitions
    assert _reads(seen, "segments") == 0
    assert _reads(seen, "computed_traits") == 0
    assert _reads(seen, "campaigns") == 0

    answer = client.patch(
        f"/api/v1/segments/{pro}", json={"text": 'plan = "team"'}, headers=tenant.secret_headers
    )
    assert answer.status_code == 200, answer.text
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    clock.advance(timedelta(minutes=1))
    seen = _processed(client, runtime, tenant, clock, {"userId": "u3", "traits": {"plan": "team"}})
    u3 = profile_id(runtime, tenant, "u3")
    assert u3 in members(runtime, pro)  # the new definition, at once
    assert _reads(seen, "segments") >= 1

    with runtime.sessions() as db:
        traits_service.create_definition(
            db, workspace_id=tenant.workspace_id, name="views", event="Viewed", aggregation="count",
            now=clock.now(),
        )  # fmt: skip
        db.commit()
    send(client, tenant, clock, "track", {"userId": "u3", "event": "Viewed"})
    with runtime.read_sessions() as db:
        computed = db.scalar(text("SELECT computed FROM profiles WHERE id = :id"), {"id": u3})
    computed = computed if isinstance(computed, dict) else json.loads(computed)
    assert computed.get("views") == 1  # the new computed trait counted in the very next batch


def _thanks_campaign(runtime: Runtime, tenant: Tenant, clock: FakeClock, *, subject: str) -> int:
    """Launch a triggered campaign sending ``subject`` on every "Bought" event; return its id."""
    ws = tenant.workspace_id
    with runtime.sessions() as db:
        campaign = campaigns_service.create_campaign(
            db, workspace_id=ws, actor="t", now=clock.now(),
            data=CampaignCreate(name="Thanks", kind="triggered", channel="email",
                                trigger={"type": "event", "event": "Bought"},
                                variants=[{"key": "A", "content": {"subject": subject, "text": "Thanks"}}]),
        )  # fmt: skip
        campaigns_service.do_launch(db, workspace_id=ws, campaign_id=campaign.id, actor="t", now=clock.now())
        db.commit()
        return int(campaign.id)


def test_a_paused_campaign_stops_admitting_at_the_next_batch(
    client: TestClient, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    ws = tenant.workspace_id
    cid = _thanks_campaign(runtime, tenant, clock, subject="Thanks")

    def entries() -> int:
        with runtime.read_sessions() as db:
            return int(
                db.scalar(
                    select(func.count())
                    .select_from(CampaignRecipient)
                    .where(CampaignRecipient.campaign_id == cid)
                )
                or 0
            )

    send(client, tenant, clock, "track", {"userId": "u1", "event": "Bought"})
    send(client, tenant, clock, "track", {"userId": "u2", "event": "Bought"})  # from the kept triggers
    assert entries() == 2
    with runtime.sessions() as db:
        campaigns_service.do_pause(db, workspace_id=ws, campaign_id=cid, actor="t", now=clock.now())
        db.commit()
    send(client, tenant, clock, "track", {"userId": "u3", "event": "Bought"})
    assert entries() == 2  # the pause holds from the very next batch


def test_identity_settings_apply_at_the_next_batch(
    client: TestClient, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    send(client, tenant, clock, "identify", {"userId": "u1", "traits": {"email": "first@example.com"}})
    with runtime.sessions() as db:
        workspace = db.get(Workspace, tenant.workspace_id)
        assert workspace is not None
        workspace.settings = {**workspace.settings, "identity": {"blocked": {"email": ["junk@example.com"]}}}
        db.commit()
    send(client, tenant, clock, "identify", {"userId": "u2", "traits": {"email": "junk@example.com"}})
    with runtime.read_sessions() as db:
        values = set(
            db.scalars(
                select(Identity.value).where(
                    Identity.workspace_id == tenant.workspace_id, Identity.kind == "email"
                )
            )
        )
    assert values == {"first@example.com"}  # the blocked value is not an identity


def test_only_a_transaction_that_pinned_the_revision_reuses_values(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    built: list[int] = []

    def build() -> int:
        built.append(1)
        return len(built)

    with runtime.sessions() as db:
        assert definitions.cached(db, ws, "test.value", build) == 1  # not pinned: built every time
        assert definitions.cached(db, ws, "test.value", build) == 2
        definitions.pin(db, ws)
        assert definitions.cached(db, ws, "test.value", build) == 3
        assert definitions.cached(db, ws, "test.value", build) == 3  # kept
        db.commit()
    with runtime.sessions() as db:
        assert definitions.cached(db, ws, "test.value", build) == 4  # a new transaction has not pinned
        definitions.pin(db, ws)
        assert definitions.cached(db, ws, "test.value", build) == 3  # the same revision: kept
        db.execute(text("UPDATE workspaces SET timezone = timezone WHERE id = :ws"), {"ws": ws})
        db.commit()
    with runtime.sessions() as db:
        definitions.pin(db, ws)
        assert definitions.cached(db, ws, "test.value", build) == 5  # built again under the new revision


def _subject(runtime: Runtime, tenant: Tenant, user: str) -> str:
    pid = profile_id(runtime, tenant, user)
    with runtime.read_sessions() as db:
        content = db.scalar(select(Message.content).where(Message.profile_id == pid))
    assert isinstance(content, dict)
    return str(content["subject"])


def test_a_triggered_campaign_s_entry_plan_is_kept_until_it_changes(
    client: TestClient, runtime: Runtime, tenant: Tenant, clock: FakeClock
) -> None:
    cid = _thanks_campaign(runtime, tenant, clock, subject="One")
    # the first batch of a workspace creates its built-in computed traits (the revision moves): the next
    # one builds what is kept
    send(client, tenant, clock, "track", {"userId": "u0", "event": "Bought"})
    send(client, tenant, clock, "track", {"userId": "u1", "event": "Bought"})
    assert _subject(runtime, tenant, "u1") == "One"

    seen = _processed(client, runtime, tenant, clock, {"userId": "u2", "event": "Bought"}, kind="track")
    assert _subject(runtime, tenant, "u2") == "One"
    assert _reads(seen, "campaigns") == 0 and _reads(seen, "campaign_variants") == 0  # kept

    with runtime.sessions() as db:
        variant = db.scalar(select(CampaignVariant).where(CampaignVariant.campaign_id == cid))
        assert variant is not None
        variant.content = {"subject": "Two", "text": "Thanks"}
        db.commit()
    send(client, tenant, clock, "track", {"userId": "u3", "event": "Bought"})
    assert _subject(runtime, tenant, "u3") == "Two"  # the edit applies from the next batch
