"""The outbox end to end against a real SMTP sink, on SQLite and PostgreSQL (R5, R8–R12, R14, R17, R23)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from rapport.accounts import service as accounts_service
from rapport.channels.fake import FakeChannel
from rapport.kit.clock import FakeClock
from rapport.messaging import service as messaging_service
from rapport.messaging.delivery import Deliverer, channels_of
from rapport.models import Event, Message, SendCounter, Workspace
from rapport.profiles import gdpr
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import DROP, SmtpSink
from tests.support.tenants import Tenant

# 11:00 UTC on a weekday: inside every default window.
NOON = datetime(2026, 11, 18, 11, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


def queue(
    runtime: Runtime,
    tenant: Tenant,
    profile_id: int,
    key: str,
    *,
    kind: str = "marketing",
    channel: str = "email",
    content: dict | None = None,
    topic: str = "",
) -> Message | None:  # type: ignore[type-arg]
    with runtime.sessions() as db:
        message = messaging_service.enqueue(
            db,
            workspace_id=tenant.workspace_id,
            profile_id=profile_id,
            channel=channel,
            kind=kind,
            topic=topic,
            content=content
            or {"subject": "Hello {{ profile.first_name }}", "html": "<p>Hi {{ profile.first_name }}</p>"},
            dedupe_key=key,
            now=runtime.clock.now(),
        )
        db.commit()
        return message


def statuses(runtime: Runtime) -> Counter[str]:
    with runtime.read_sessions() as db:
        return Counter(db.scalars(select(Message.status)).all())


def test_a_marketing_email_arrives_personalised_with_one_click_unsubscribe(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, client: TestClient
) -> None:
    [pid] = make_people(runtime, tenant, 1)
    queue(runtime, tenant, pid, "welcome:1")
    stats = deliverer.drain()
    assert (stats.sent, stats.skipped) == (1, 0)
    [received] = sink.wait_for(1)
    parsed = received.parsed()
    assert received.rcpt_tos == ["person0@example.com"]
    assert parsed["Subject"] == "Hello Person0"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = parsed["List-Unsubscribe"].strip("<>").split(">")[0]
    assert unsubscribe.startswith(f"{runtime.settings.base_url}/u/")
    # The header's link works as RFC 8058 describes, and the next marketing email is skipped (R11, R12).
    path = unsubscribe.removeprefix(runtime.settings.base_url)
    assert (
        client.post(path, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False).status_code == 200
    )
    queue(runtime, tenant, pid, "welcome:2")
    assert deliverer.drain().skipped == 1
    assert len(sink.messages) == 1
    with runtime.read_sessions() as db:
        names = set(
            db.scalars(select(Event.event).where(Event.profile_id == pid, Event.source == "rapport")).all()
        )
    assert {"email_queued", "email_sent", "email_skipped"} <= names


def test_the_same_decision_makes_one_row(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    [pid] = make_people(runtime, tenant, 1)
    assert queue(runtime, tenant, pid, "cmp:9:p0:email") is not None
    assert queue(runtime, tenant, pid, "cmp:9:p0:email") is None
    deliverer.drain()
    assert len(sink.wait_for(1)) == 1


def test_no_consent_no_marketing_but_service_messages_go(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent=None)
    queue(runtime, tenant, pid, "m1")
    queue(
        runtime,
        tenant,
        pid,
        "receipt-1",
        kind="service",
        content={"subject": "Your receipt", "text": "Thanks for order {{ data.order }}"},
    )
    deliverer.drain()
    [received] = sink.wait_for(1)
    assert received.parsed()["Subject"] == "Your receipt"
    assert received.parsed()["List-Unsubscribe"] is None  # service mail is not a mailing list
    with runtime.read_sessions() as db:
        skipped = db.scalar(select(Message).where(Message.dedupe_key == "m1"))
        assert skipped is not None and skipped.status == "skipped"
        assert skipped.status_reason == "no email consent (never_asked)"


def test_header_injection_cannot_add_recipients(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    """R23: a personalised Subject with CR/LF yields one recipient and one Subject."""
    [pid] = make_people(runtime, tenant, 1, extra={"first_name": "x\r\nBcc: evil@x.example"})
    queue(runtime, tenant, pid, "inj")
    deliverer.drain()
    messages = sink.messages + sink.refused
    assert all(m.rcpt_tos == ["person0@example.com"] for m in messages)
    for m in sink.messages:
        parsed = m.parsed()
        assert len(parsed.get_all("Subject")) == 1
        assert parsed["Bcc"] is None


def test_lost_acknowledgement_is_unknown_and_not_resent(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    """R8: the connection drops after end-of-data: 'unknown', never a blind resend."""
    [pid] = make_people(runtime, tenant, 1)
    sink.data_reply = lambda message: DROP
    queue(runtime, tenant, pid, "lost")
    stats = deliverer.drain()
    assert stats.unknown == 1
    sink.data_reply = None
    deliverer.drain()
    assert len(sink.messages) == 1
    assert statuses(runtime)["unknown"] == 1


def test_transient_errors_retry_with_backoff_then_dead_letter(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, clock: FakeClock
) -> None:
    """R10: 4xx retries later with backoff; after max attempts the message is dead with its error."""
    [pid] = make_people(runtime, tenant, 1)
    sink.rcpt_reply = lambda address: "451 4.3.0 try again later"
    queue(runtime, tenant, pid, "flaky")
    deliverer.drain()
    with runtime.read_sessions() as db:
        row = db.scalar(select(Message))
        assert row is not None and row.status == "queued" and row.attempts == 1
        first_delay = (row.run_at - clock.now()).total_seconds()
        assert 15 <= first_delay <= 45  # 30 s base, jitter ½–1½
    for _ in range(10):
        clock.advance(timedelta(hours=3))
        deliverer.drain()
    with runtime.read_sessions() as db:
        row = db.scalar(select(Message))
        assert row is not None and row.status == "dead" and row.attempts == row.max_attempts
        assert "451" in (row.last_error or "")
    assert sink.messages == []


def test_permanent_rcpt_refusal_is_a_hard_bounce_that_suppresses(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    [pid] = make_people(runtime, tenant, 1)
    sink.rcpt_reply = lambda address: "550 5.1.1 no such user"
    queue(runtime, tenant, pid, "b1")
    assert deliverer.drain().dead == 1
    sink.rcpt_reply = None
    queue(runtime, tenant, pid, "b2", kind="service", content={"subject": "Receipt", "text": "x"})
    assert deliverer.drain().skipped == 1
    with runtime.read_sessions() as db:
        reasons = dict(db.execute(select(Message.dedupe_key, Message.status_reason)).all())
    assert reasons["b2"] == "address is suppressed"
    assert sink.messages == []


def test_erased_people_are_never_sent_to(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    """R17: erasure removes queued messages with the profile."""
    [pid] = make_people(runtime, tenant, 1)
    queue(runtime, tenant, pid, "before-erase")
    with runtime.sessions() as db:
        gdpr.erase_profile(db, workspace_id=tenant.workspace_id, profile_id=pid, actor="test")
        db.commit()
    deliverer.drain()
    assert sink.messages == []
    assert sum(statuses(runtime).values()) == 0


def test_erasure_deletes_the_persons_cap_counters_and_only_theirs(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    """R17: the frequency-cap counters (no foreign key, migration 0011) go with the erased person."""
    kept, erased = make_people(runtime, tenant, 2)
    with runtime.sessions() as db:
        db.execute(
            update(Workspace)
            .where(Workspace.id == tenant.workspace_id)
            .values(settings={"caps": {"email": {"day": 3}, "*": {"week": 9}}})
        )
        db.commit()
    for pid in (kept, erased):
        queue(runtime, tenant, pid, f"capped-{pid}")
    assert deliverer.drain().sent == 2

    def counters() -> Counter[int]:
        with runtime.read_sessions() as db:
            return Counter(db.scalars(select(SendCounter.profile_id)).all())

    assert counters() == Counter({kept: 2, erased: 2})  # the email day and all-channel week counters
    with runtime.sessions() as db:
        gdpr.erase_profile(db, workspace_id=tenant.workspace_id, profile_id=erased, actor="test")
        db.commit()
    assert counters() == Counter({kept: 2})


def test_quiet_hours_defer_sms_to_the_morning(runtime: Runtime, tenant: Tenant, clock: FakeClock) -> None:
    """R14: an SMS due at 22:30 London time goes at 08:00, not dropped."""
    sms = FakeChannel("sms")
    channels_of(runtime)["sms"] = sms
    [pid] = make_people(runtime, tenant, 1, consent="sms")
    clock.set(datetime(2026, 11, 18, 22, 30, tzinfo=UTC))
    queue(runtime, tenant, pid, "night", channel="sms", content={"body": "Sale starts now"})
    deliverer = Deliverer(runtime, worker_id="sms-test")
    assert deliverer.drain().deferred == 1
    assert sms.sent == []
    with runtime.read_sessions() as db:
        row = db.scalar(select(Message))
        assert row is not None and row.run_at == datetime(2026, 11, 19, 8, 0, tzinfo=UTC)
    clock.set(datetime(2026, 11, 19, 8, 0, 1, tzinfo=UTC))
    assert deliverer.drain().sent == 1
    assert [m.sms.body for m in sms.sent if m.sms] == ["Sale starts now"]
    deliverer.close()


def test_frequency_cap_holds_under_concurrency(
    runtime: Runtime, tenant: Tenant, sink: SmtpSink, email_channel: object, backend: str
) -> None:
    """R9: 20 campaigns hit one person at once with a 1/day email cap: 1 delivery, 19 skips."""
    [pid] = make_people(runtime, tenant, 1)
    with runtime.sessions() as db:
        db.execute(
            update(Workspace)
            .where(Workspace.id == tenant.workspace_id)
            .values(settings={"caps": {"email": {"day": 1}}})
        )
        db.commit()
    for n in range(20):
        with runtime.sessions() as db:
            messaging_service.enqueue(
                db,
                workspace_id=tenant.workspace_id,
                profile_id=pid,
                channel="email",
                content={"subject": f"Campaign {n}", "text": "x"},
                campaign_id=n,
                dedupe_key=f"cmp:{n}:{pid}:email",
                now=runtime.clock.now(),
            )
            db.commit()
    workers = [Deliverer(runtime, worker_id=f"cap-{i}", batch_size=2) for i in range(4)]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for w in workers:
        w.close()
    assert statuses(runtime) == Counter({"sent": 1, "skipped": 19})
    assert len(sink.wait_for(1)) == 1
    with runtime.read_sessions() as db:
        reasons = set(db.scalars(select(Message.status_reason).where(Message.status == "skipped")).all())
    assert reasons == {"frequency cap reached"}


def test_send_api_is_idempotent_and_scoped(
    runtime: Runtime,
    tenant: Tenant,
    other_tenant: Tenant,
    client: TestClient,
    deliverer: Deliverer,
    sink: SmtpSink,
) -> None:
    make_people(runtime, tenant, 1)
    body = {
        "user_id": "p0",
        "channel": "email",
        "subject": "Order {{ data.order }} shipped",
        "text": "On its way",
        "data": {"order": "A-17"},
    }
    first = client.post(
        "/api/v1/messages", json=body, headers={**tenant.secret_headers, "Idempotency-Key": "ship-A17"}
    )
    again = client.post(
        "/api/v1/messages", json=body, headers={**tenant.secret_headers, "Idempotency-Key": "ship-A17"}
    )
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["id"] == again.json()["id"]
    deliverer.drain()
    [received] = sink.wait_for(1)
    assert received.parsed()["Subject"] == "Order A-17 shipped"
    message_pk = first.json()["id"]
    assert (
        client.get(f"/api/v1/messages/{message_pk}", headers=tenant.secret_headers).json()["status"] == "sent"
    )
    assert (
        client.get(f"/api/v1/messages/{message_pk}", headers=other_tenant.secret_headers).status_code == 404
    )
    other = client.post("/api/v1/messages", json=body, headers=other_tenant.secret_headers)
    assert other.status_code == 404
    missing = client.post(
        "/api/v1/messages",
        json={"user_id": "p0", "channel": "email", "text": "x"},
        headers=tenant.secret_headers,
    )
    assert missing.status_code == 400 and "subject" in missing.json()["error"]["message"]


def test_a_bad_template_fails_that_message_only(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    """R22 at the outbox: a loop bomb fails its own message; the others go."""
    a, b = make_people(runtime, tenant, 2)
    queue(
        runtime,
        tenant,
        a,
        "bomb",
        content={
            "subject": "x",
            "text": "{% for i in (1..100000) %}{% for j in (1..100000) %}x{% endfor %}{% endfor %}",
        },
    )
    queue(runtime, tenant, b, "fine")
    stats = deliverer.drain()
    assert (stats.sent, stats.dead) == (1, 1)
    with runtime.read_sessions() as db:
        bomb = db.scalar(select(Message).where(Message.dedupe_key == "bomb"))
        assert bomb is not None and bomb.status == "dead" and "render failed" in (bomb.status_reason or "")
    assert sink.wait_for(1)[0].rcpt_tos == ["person1@example.com"]


def test_unsubscribe_mid_campaign_stops_the_rest(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    """R12: an opt-out between two rounds of a running campaign stops what is left for that person."""
    ids = make_people(runtime, tenant, 3)
    for n in range(2):
        for pid in ids:
            queue(runtime, tenant, pid, f"c{n}:{pid}")
    deliverer.batch_size = 3
    deliverer.run_round()
    with runtime.sessions() as db:
        workspace = accounts_service.get_workspace(db, tenant.workspace_id)
        from rapport.consent import service as consent_service

        consent_service.record(
            db,
            workspace_id=workspace.id,
            profile_id=ids[0],
            now=runtime.clock.now(),
            statement=consent_service.Statement(channel="email", action="withdrawn", source="test"),
        )
        db.commit()
    deliverer.drain()
    counts = Counter(m.rcpt_tos[0] for m in sink.messages)
    assert counts == Counter({"person0@example.com": 1, "person1@example.com": 2, "person2@example.com": 2})


def test_send_api_takes_the_longest_idempotency_key_whole(
    runtime: Runtime, tenant: Tenant, client: TestClient
) -> None:
    """A 200-character Idempotency-Key (the longest taken) does not fit ``api:`` + key in the outbox's
    dedupe column: it is stored as its digest, never cut, so keys sharing their first 196 characters stay
    two messages, and a repeat of either is still one."""
    from rapport.api.idempotency import MAX_KEY_LENGTH
    from rapport.messaging.api import api_dedupe_key

    make_people(runtime, tenant, 1)
    body = {"user_id": "p0", "channel": "email", "subject": "Hi", "text": "x"}
    first_key, second_key = "a" * (MAX_KEY_LENGTH - 1) + "1", "a" * (MAX_KEY_LENGTH - 1) + "2"
    answers = [
        client.post("/api/v1/messages", json=body, headers={**tenant.secret_headers, "Idempotency-Key": key})
        for key in (first_key, second_key, first_key)
    ]
    assert [a.status_code for a in answers] == [202, 202, 202], answers[0].text
    ids = [a.json()["id"] for a in answers]
    assert ids[0] != ids[1] and ids[2] == ids[0]
    with runtime.read_sessions() as db:
        keys = set(db.scalars(select(Message.dedupe_key)).all())
    assert keys == {api_dedupe_key(first_key), api_dedupe_key(second_key)}
    assert api_dedupe_key("ship-A17") == "api:ship-A17"
    assert all(len(k) <= 200 for k in keys)
