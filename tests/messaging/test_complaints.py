"""Email feedback webhooks: complaints suppress at once and pause a campaign above 0.3 % (R18, R21)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from rapport.channels.webhook import SIGNATURE_HEADER, signature_header
from rapport.collect import identity as ident
from rapport.kit.clock import FakeClock
from rapport.messaging.delivery import Deliverer
from rapport.models import ConsentRecord, Message, Subscription, Suppression, Workspace
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import NOON, events, message, queue, set_workspace_settings
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

SECRET = "feedback-secret-0123456789"
CAMPAIGN = 7


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture(autouse=True)
def feedback_secret(runtime: Runtime, tenant: Tenant) -> None:
    set_workspace_settings(runtime, tenant, email={"feedback_secret": SECRET})


def report(
    client: TestClient,
    tenant: Tenant,
    doc: dict[str, Any],
    *,
    secret: str = SECRET,
    at: float | None = None,
    slug: str | None = None,
) -> httpx.Response:
    body = json.dumps(doc).encode()
    header = signature_header(secret, int(at if at is not None else NOON.timestamp()), body)
    return client.post(
        f"/webhooks/email/{slug or tenant.slug}",
        content=body,
        headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"},
    )


def suppressed(runtime: Runtime, tenant: Tenant, address: str) -> bool:
    digest = ident.suppression_hash(tenant.workspace_id, "email", address)
    with runtime.read_sessions() as db:
        return db.scalar(select(Suppression.id).where(Suppression.value_hash == digest)) is not None


def email_state(runtime: Runtime, profile_id: int) -> str | None:
    with runtime.read_sessions() as db:
        return db.scalar(
            select(Subscription.state).where(
                Subscription.profile_id == profile_id,
                Subscription.channel == "email",
                Subscription.topic == "",
            )
        )


def paused(runtime: Runtime, tenant: Tenant) -> list[int]:
    with runtime.read_sessions() as db:
        workspace = db.get(Workspace, tenant.workspace_id)
        assert workspace is not None
        return list((workspace.settings or {}).get("paused_campaigns") or [])


def test_signatures_are_checked_and_a_report_applies_once(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, client: TestClient
) -> None:
    [pid] = make_people(runtime, tenant, 1)
    doc = {"id": "fb-1", "type": "complaint", "email": "person0@example.com"}
    assert report(client, tenant, doc, secret="wrong").status_code == 403
    assert report(client, tenant, doc, at=NOON.timestamp() - 600).status_code == 403  # stale: a replay
    assert report(client, tenant, doc, slug="nope").status_code == 403
    assert client.post(f"/webhooks/email/{tenant.slug}", json=doc).status_code == 403
    assert email_state(runtime, pid) == "subscribed"
    results = [report(client, tenant, doc).json()["result"] for _ in range(50)]
    assert results[0] == "complained" and set(results[1:]) == {"duplicate"}
    with runtime.read_sessions() as db:
        log = db.scalars(
            select(ConsentRecord).where(ConsentRecord.profile_id == pid, ConsentRecord.source == "complaint")
        ).all()
    assert [(r.channel, r.action) for r in log] == [("email", "withdrawn")]
    assert len(events(runtime, pid, "email_complained")) == 1
    assert report(client, tenant, {"type": "nonsense", "email": "x@example.com"}).status_code == 400


def test_a_complaint_suppresses_at_once_and_pauses_the_campaign_above_three_per_mille(
    runtime: Runtime,
    tenant: Tenant,
    deliverer: Deliverer,
    sink: SmtpSink,
    client: TestClient,
    clock: FakeClock,
) -> None:
    p0, p1, p2 = make_people(runtime, tenant, 3)
    # The campaign's history: 400 messages already out (to p2; only the counts matter here).
    with runtime.sessions() as db:
        db.execute(
            insert(Message),
            [
                {"workspace_id": tenant.workspace_id, "message_id": f"old{i}", "dedupe_key": f"old:{i}",
                 "profile_id": p2, "campaign_id": CAMPAIGN, "channel": "email", "kind": "marketing",
                 "status": "sent", "sent_at": NOON, "run_at": NOON, "content": {}, "created_at": NOON,
                 "updated_at": NOON}
                for i in range(400)
            ],
        )  # fmt: skip
        db.commit()
    m0 = queue(runtime, tenant, p0, "c7:p0", campaign_id=CAMPAIGN)
    m1 = queue(runtime, tenant, p1, "c7:p1", campaign_id=CAMPAIGN)
    assert deliverer.drain().sent == 2
    sink.messages.clear()

    # One complaint in 402: 0.25 %, under the limit. The address is suppressed at once, consent withdrawn.
    answer = report(client, tenant, {"type": "complaint", "email": "person0@example.com",
                                     "message_id": f"<{m0.message_id}@hartley.example>"})  # fmt: skip
    assert answer.json() == {"result": "complained"}
    assert suppressed(runtime, tenant, "person0@example.com")
    assert email_state(runtime, p0) == "unsubscribed"
    assert paused(runtime, tenant) == []
    [event] = events(runtime, p0, "email_complained")
    assert event.properties["campaign_id"] == CAMPAIGN
    queue(runtime, tenant, p0, "after:p0", kind="service", content={"subject": "Receipt", "text": "Thanks"})
    queue(runtime, tenant, p1, "c7:p1:b", campaign_id=CAMPAIGN)
    stats = deliverer.drain()
    assert (stats.sent, stats.skipped) == (1, 1)  # p0's receipt is not sent to a suppressed address
    assert [m.rcpt_tos for m in sink.messages] == [["person1@example.com"]]

    # A second complaint: 2 in 403 > 0.3 % → the campaign pauses; other mail still flows.
    answer = report(client, tenant, {"type": "complaint", "message_id": m1.message_id})
    assert answer.json() == {"result": "complaint_campaign_paused"}
    assert paused(runtime, tenant) == [CAMPAIGN]
    held = queue(runtime, tenant, p2, "c7:p2:new", campaign_id=CAMPAIGN)
    other = queue(runtime, tenant, p2, "other:p2")
    stats = deliverer.drain()
    assert (stats.sent, stats.deferred) == (1, 1)
    assert message(runtime, other.message_id).status == "sent"
    waiting = message(runtime, held.message_id)
    assert waiting.status == "queued" and "campaign paused" in (waiting.status_reason or "")
    clock.advance(timedelta(minutes=16))
    assert deliverer.drain().deferred == 1  # still paused: never sent, never dropped
    set_workspace_settings(runtime, tenant, paused_campaigns=[])
    clock.advance(timedelta(minutes=16))
    assert deliverer.drain().sent == 1
    assert message(runtime, held.message_id).status == "sent"


def test_hard_bounces_suppress_and_soft_bounces_only_record(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, client: TestClient
) -> None:
    p0, p1 = make_people(runtime, tenant, 2)
    m0 = queue(runtime, tenant, p0, "b:p0")
    m1 = queue(runtime, tenant, p1, "b:p1")
    deliverer.drain()
    soft = report(client, tenant, {"type": "bounce", "bounce_type": "soft", "message_id": m1.message_id})
    assert soft.json() == {"result": "bounced"}
    assert not suppressed(runtime, tenant, "person1@example.com")
    assert events(runtime, p1, "email_bounced")[0].properties["bounce"] == "soft"
    hard = report(
        client, tenant, {"type": "bounce", "email": "Person0@Example.com", "message_id": m0.message_id}
    )
    assert hard.json() == {"result": "bounced"}
    assert suppressed(runtime, tenant, "person0@example.com")
    assert email_state(runtime, p0) == "subscribed"  # a bounce is not a withdrawal of consent
