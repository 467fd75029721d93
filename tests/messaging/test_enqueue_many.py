"""The bulk outbox API: many rows in few statements, duplicates skipped, ``queued`` feedback written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from rapport.errors import NotFound, ValidationFailed
from rapport.messaging import service as messaging_service
from rapport.messaging.service import OutboxRow
from rapport.models import Event, Message
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.support.statements import statements
from tests.support.tenants import Tenant

CONTENT = {"subject": "Autumn sale", "html": "<p>Hi {{ profile.first_name }}</p>"}


def _queue(runtime: Runtime, tenant: Tenant, rows: list[OutboxRow]) -> int:
    with runtime.sessions() as db:
        new = messaging_service.enqueue_many(
            db, workspace_id=tenant.workspace_id, rows=rows, now=runtime.clock.now()
        )
        db.commit()
    return new


def test_rows_are_written_with_queued_feedback(runtime: Runtime, tenant: Tenant) -> None:
    people = make_people(runtime, tenant, 3, consent=None)
    later = runtime.clock.now() + timedelta(hours=2)
    rows = [
        OutboxRow(people[0], "email", CONTENT, "c7:0", campaign_id=7, variant="A", topic="offers"),
        OutboxRow(people[1], "email", CONTENT, "c7:1", campaign_id=7, variant="B", priority=5),
        OutboxRow(people[2], "sms", {"body": "Hi"}, "s:2", kind="service", run_at=later, max_attempts=2),
    ]
    assert _queue(runtime, tenant, rows) == 3
    with runtime.read_sessions() as db:
        found = {m.dedupe_key: m for m in db.scalars(select(Message)).all()}
        queued = {
            e.properties["message_id"]: e
            for e in db.scalars(select(Event).where(Event.event.in_(["email_queued", "sms_queued"]))).all()
        }
    assert set(found) == {"c7:0", "c7:1", "s:2"}
    first, second, sms = found["c7:0"], found["c7:1"], found["s:2"]
    assert (first.profile_id, first.campaign_id, first.variant, first.topic) == (people[0], 7, "A", "offers")
    assert (first.status, first.attempts, first.max_attempts, first.kind) == ("queued", 0, 6, "marketing")
    assert first.content == CONTENT and second.priority == 5
    assert first.run_at == first.created_at
    assert sms.run_at == later and sms.max_attempts == 2 and sms.kind == "service"
    assert len({m.message_id for m in found.values()}) == 3
    assert set(queued) == {m.message_id for m in found.values()}
    fb = queued[first.message_id]
    assert fb.event == "email_queued" and fb.profile_id == people[0]
    assert fb.properties == {
        "message_id": first.message_id,
        "channel": "email",
        "campaign_id": 7,
        "variant": "A",
        "topic": "offers",
        "kind": "marketing",
    }
    assert queued[sms.message_id].event == "sms_queued"


def test_duplicates_are_skipped_in_the_batch_and_against_the_table(runtime: Runtime, tenant: Tenant) -> None:
    people = make_people(runtime, tenant, 4, consent=None)
    single = messaging_service.OutboxRow(people[0], "email", CONTENT, "k0")
    with runtime.sessions() as db:  # one row made by the single-row path first
        assert (
            messaging_service.enqueue(
                db,
                workspace_id=tenant.workspace_id,
                profile_id=people[0],
                channel="email",
                content=CONTENT,
                dedupe_key="k0",
                now=runtime.clock.now(),
            )
            is not None
        )
        db.commit()
    rows = [single] + [OutboxRow(pid, "email", CONTENT, f"k{i}") for i, pid in enumerate(people)]
    rows.append(OutboxRow(people[3], "email", {"subject": "other", "text": "x"}, "k3"))  # same key again
    assert _queue(runtime, tenant, rows) == 3
    assert _queue(runtime, tenant, rows) == 0
    with runtime.read_sessions() as db:
        keys = sorted(db.scalars(select(Message.dedupe_key)).all())
        queued = db.scalar(select(func.count()).select_from(Event).where(Event.event == "email_queued"))
        k3 = db.scalar(select(Message).where(Message.dedupe_key == "k3"))
    assert keys == ["k0", "k1", "k2", "k3"]
    assert queued == 4
    assert k3 is not None and k3.content == CONTENT  # the first row of a key wins


def test_keys_are_per_workspace(runtime: Runtime, tenant: Tenant, other_tenant: Tenant) -> None:
    mine = make_people(runtime, tenant, 1, consent=None)
    theirs = make_people(runtime, other_tenant, 1, consent=None)
    assert _queue(runtime, tenant, [OutboxRow(mine[0], "email", CONTENT, "same")]) == 1
    assert _queue(runtime, other_tenant, [OutboxRow(theirs[0], "email", CONTENT, "same")]) == 1


def test_invalid_rows_write_nothing(runtime: Runtime, tenant: Tenant, other_tenant: Tenant) -> None:
    people = make_people(runtime, tenant, 2, consent=None)
    stranger = make_people(runtime, other_tenant, 1, consent=None)[0]
    good = OutboxRow(people[0], "email", CONTENT, "good")
    bad_rows: list[tuple[OutboxRow, type[Exception]]] = [
        (OutboxRow(people[1], "fax", CONTENT, "b1"), ValidationFailed),
        (OutboxRow(people[1], "email", CONTENT, "b2", kind="spam"), ValidationFailed),
        (OutboxRow(people[1], "email", {"subject": "no body"}, "b3"), ValidationFailed),
        (OutboxRow(people[1], "sms", {"text": "no body"}, "b4"), ValidationFailed),
        (OutboxRow(stranger, "email", CONTENT, "b5"), NotFound),  # another workspace's profile (R20)
        (OutboxRow(10**9, "email", CONTENT, "b6"), NotFound),
    ]
    for bad, error in bad_rows:
        with runtime.sessions() as db, pytest.raises(error):
            messaging_service.enqueue_many(
                db, workspace_id=tenant.workspace_id, rows=[good, bad], now=runtime.clock.now()
            )
    with runtime.read_sessions() as db:
        assert db.scalar(select(func.count()).select_from(Message)) == 0
    assert _queue(runtime, tenant, []) == 0


def test_ten_thousand_rows_take_a_few_statements(runtime: Runtime, tenant: Tenant) -> None:
    people = make_people(runtime, tenant, 100, consent=None)
    rows = [
        OutboxRow(pid, "email", CONTENT, f"c{campaign}:{pid}", campaign_id=campaign)
        for campaign in range(100)
        for pid in people
    ]
    with statements(runtime) as seen:
        assert _queue(runtime, tenant, rows) == 10_000
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) <= 25, len(inserts)  # 10 chunks of messages + 10 of feedback
    assert len(seen) <= 40, len(seen)
    with runtime.read_sessions() as db:
        assert db.scalar(select(func.count()).select_from(Message)) == 10_000
        assert (
            db.scalar(select(func.count()).select_from(Event).where(Event.event == "email_queued")) == 10_000
        )
        assert db.scalar(select(func.count(func.distinct(Message.message_id)))) == 10_000
    with statements(runtime) as seen:
        assert _queue(runtime, tenant, rows) == 0
    assert len([s for s in seen if s.lstrip().upper().startswith("INSERT")]) <= 10
