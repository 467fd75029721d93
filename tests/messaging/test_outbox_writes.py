"""The deliverer's batch writes (claim as plain records, update by id, cap counters) on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from rapport.messaging import repository as repo
from rapport.models import Message, SendCounter
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import queue
from tests.support.tenants import Tenant


def test_claim_returns_plain_records_sharing_one_parsed_content(runtime: Runtime, tenant: Tenant) -> None:
    ids = make_people(runtime, tenant, 3, consent=None)
    content = {"subject": "Hi ✓", "html": "<p>{{ profile.first_name }}</p>", "campaign": {"id": 7}}
    for n, pid in enumerate(ids):
        queue(runtime, tenant, pid, f"k{n}", content=content, campaign_id=7)
    queue(runtime, tenant, ids[0], "other", content={"subject": "Other", "text": "x"})
    now = runtime.clock.now()
    with runtime.sessions() as db:
        claimed = repo.claim(db, worker_id="w1", now=now, lease_until=now + timedelta(minutes=5), limit=10)
        db.commit()
    assert len(claimed) == 4
    assert all(isinstance(m, repo.ClaimedMessage) for m in claimed)
    same = [m for m in claimed if m.campaign_id == 7]
    assert [m.profile_id for m in same] == ids
    assert all(m.content == content for m in same)
    assert same[0].content is same[1].content is same[2].content  # parsed once
    assert all(m.attempts == 1 and m.channel == "email" and m.kind == "marketing" for m in claimed)
    assert all(m.run_at.tzinfo is not None for m in claimed)
    with runtime.read_sessions() as db:
        rows = db.scalars(select(Message).order_by(Message.id)).all()
        assert {(r.status, r.claimed_by, r.attempts) for r in rows} == {(repo.SENDING, "w1", 1)}
        assert [r.id for r in rows] == [m.id for m in sorted(claimed, key=lambda m: m.id)]


def test_update_messages_writes_each_rows_values(runtime: Runtime, tenant: Tenant) -> None:
    ids = make_people(runtime, tenant, 2, consent=None)
    first = queue(runtime, tenant, ids[0], "a")
    second = queue(runtime, tenant, ids[1], "b", channel="inapp", content={"title": "T"})
    at = datetime(2026, 11, 20, 9, 30, 15, 123456, tzinfo=UTC)
    with runtime.sessions() as db:
        repo.update_messages(
            db,
            [
                {
                    "id": first.id,
                    "status": repo.SENT,
                    "sent_at": at,
                    "provider_id": "Q1 'quoted' ✓",
                    "claimed_by": None,
                    "attempts": 3,
                    "content": {"rendered": {"title": "x"}, "n": [1, 2]},
                },
                {
                    "id": second.id,
                    "status": repo.UNKNOWN,
                    "sent_at": None,
                    "provider_id": None,
                    "claimed_by": "w2",
                    "attempts": 0,
                    "content": {},
                },
            ],
        )
        repo.update_messages(db, [])
        db.commit()
    with runtime.read_sessions() as db:
        a = db.get(Message, first.id)
        b = db.get(Message, second.id)
        assert a is not None and b is not None
        assert (a.status, a.sent_at, a.provider_id, a.claimed_by, a.attempts) == (
            repo.SENT,
            at,
            "Q1 'quoted' ✓",
            None,
            3,
        )
        assert a.content == {"rendered": {"title": "x"}, "n": [1, 2]}
        assert (b.status, b.sent_at, b.provider_id, b.claimed_by, b.attempts, b.content) == (
            repo.UNKNOWN,
            None,
            None,
            "w2",
            0,
            {},
        )
        assert a.dedupe_key == "a" and b.dedupe_key == "b" and a.channel == "email"


def test_set_counters_writes_locked_counts(runtime: Runtime, tenant: Tenant) -> None:
    ids = make_people(runtime, tenant, 2, consent=None)
    keys = [(tenant.workspace_id, pid, "email", "d2026-11-20") for pid in ids]
    with runtime.sessions() as db:
        assert repo.lock_counters(db, keys) == dict.fromkeys(keys, 0)
        repo.set_counters(db, {keys[0]: 2, keys[1]: 1})
        db.commit()
    with runtime.sessions() as db:
        assert repo.lock_counters(db, keys) == {keys[0]: 2, keys[1]: 1}
        repo.set_counters(db, {keys[1]: 0})
        db.commit()
    with runtime.read_sessions() as db:
        found = {
            (w, p, c, per): n
            for w, p, c, per, n in db.execute(
                select(
                    SendCounter.workspace_id,
                    SendCounter.profile_id,
                    SendCounter.channel,
                    SendCounter.period,
                    SendCounter.count,
                )
            ).all()
        }
    assert found == {keys[0]: 2, keys[1]: 0}
