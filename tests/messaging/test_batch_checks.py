"""Claim-time checks decided for a whole batch at once: caps counted across the batch in priority order,
given back when a message cannot go, and the skip/sent feedback written in bulk (R9)."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select, update

from rapport.messaging import service as messaging_service
from rapport.messaging.delivery import Deliverer
from rapport.messaging.service import OutboxRow
from rapport.models import Event, Message, SendCounter, Workspace
from rapport.profiles import gdpr
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant


def test_caps_are_counted_across_one_batch_in_priority_order(
    runtime: Runtime, tenant: Tenant, sink: SmtpSink, deliverer: Deliverer
) -> None:
    ann, bob, cat = make_people(runtime, tenant, 3)
    with runtime.sessions() as db:
        db.execute(
            update(Workspace)
            .where(Workspace.id == tenant.workspace_id)
            .values(settings={"caps": {"email": {"day": 2}, "*": {"week": 5}}})
        )
        good = {"subject": "Offer {{ data.n }}", "text": "Hi {{ profile.first_name }}"}
        broken = {"subject": "Broken", "text": "{% if profile.first_name %}never closed"}
        rows = [OutboxRow(ann, "email", broken, "ann-broken", priority=1)]  # first, fails to render
        rows += [OutboxRow(ann, "email", good, f"ann-{n}", priority=10 + n) for n in range(4)]
        rows += [OutboxRow(ann, "email", good, "ann-service", kind="service")]  # never capped
        rows += [OutboxRow(bob, "email", good, f"bob-{n}") for n in range(2)]
        rows += [OutboxRow(cat, "email", good, "cat-0")]
        assert messaging_service.enqueue_many(
            db, workspace_id=tenant.workspace_id, rows=rows, now=runtime.clock.now()
        ) == len(rows)
        db.commit()
    with runtime.sessions() as db:
        gdpr.suppress(
            db, workspace_id=tenant.workspace_id, kind="email", value="person2@example.com", reason="test"
        )
        db.commit()

    totals = deliverer.drain()
    assert totals.claimed == len(rows)
    with runtime.read_sessions() as db:
        found = {key: (status, reason) for key, status, reason in db.execute(
            select(Message.dedupe_key, Message.status, Message.status_reason)
        )}  # fmt: skip
        counters = {
            (pid, channel, period[0]): n
            for pid, channel, period, n in db.execute(
                select(SendCounter.profile_id, SendCounter.channel, SendCounter.period, SendCounter.count)
            )
        }
        skipped_events = db.scalar(
            select(func.count()).select_from(Event).where(Event.event == "email_skipped")
        )
        sent_events = db.scalar(select(func.count()).select_from(Event).where(Event.event == "email_sent"))
    assert found["ann-broken"][0] == "dead" and "render failed" in str(found["ann-broken"][1])
    assert [found[f"ann-{n}"][0] for n in range(4)] == ["sent", "sent", "skipped", "skipped"]
    assert found["ann-2"][1] == "frequency cap reached"
    assert found["ann-service"][0] == "sent"
    assert [found[f"bob-{n}"][0] for n in range(2)] == ["sent", "sent"]
    assert found["cat-0"] == ("skipped", "address is suppressed")
    assert counters[(ann, "email", "d")] == 2 and counters[(ann, "*", "w")] == 2  # the dead one gave back
    assert counters[(bob, "email", "d")] == 2
    assert (cat, "email", "d") not in counters or counters[(cat, "email", "d")] == 0
    statuses = Counter(status for status, _reason in found.values())
    assert statuses == Counter({"sent": 5, "skipped": 3, "dead": 1})
    assert skipped_events == 3 and sent_events == 5
    assert len(sink.wait_for(5)) == 5
