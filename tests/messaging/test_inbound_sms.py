"""Inbound SMS and status callbacks through the real webhook routes, signed the way Twilio signs (R13, R21).

Signatures are computed by tests/support/fake_twilio.py (independently of rapport); outgoing texts go to
the fake Twilio server on 127.0.0.1 and its status callbacks are replayed to the app.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from rapport.app import create_app, wire_runtime
from rapport.channels.net import SafeHttpClient
from rapport.channels.sms import TwilioSmsChannel
from rapport.consent import service as consent_service
from rapport.kit.clock import FakeClock
from rapport.messaging import inbound
from rapport.messaging.delivery import Deliverer, channels_of
from rapport.models import ConsentRecord, Message, Subscription, WebhookReceipt
from rapport.runtime import Runtime, build_runtime
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import NOON, events, message, queue, set_workspace_settings
from tests.support.fake_twilio import FakeMessage, FakeTwilio, signature
from tests.support.smtp_sink import free_port
from tests.support.tenants import Tenant

HELP_TEXT = "Hartley & Co: help at hartley.example/help. Msg&data rates may apply. Reply STOP to opt out."
OPT_OUT = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPT OUT",
    "OPTOUT",
    "opt-out",
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def twilio(runtime: Runtime, tenant: Tenant) -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        wire_runtime(runtime)
        channel = TwilioSmsChannel(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            from_number="+447700900000",
            base_url=fake.base_url,
            http=SafeHttpClient(allow_loopback=True, timeout=5),
        )
        channels_of(runtime)["sms"] = channel
        set_workspace_settings(runtime, tenant, sms={"auth_token": fake.auth_token, "help_text": HELP_TEXT})
        yield fake
        channel.close()


@pytest.fixture
def sms_deliverer(runtime: Runtime, twilio: FakeTwilio) -> Iterator[Deliverer]:
    d = Deliverer(runtime, worker_id="sms-deliverer", batch_size=25)
    yield d
    d.close()


def inbound_url(runtime: Runtime, tenant: Tenant, kind: str = "sms") -> str:
    return f"{runtime.settings.base_url}/webhooks/twilio/{tenant.slug}/{kind}"


def post_signed(
    client: TestClient, token: str, url: str, params: dict[str, str], *, sig: str | None = None
) -> httpx.Response:
    """POST like Twilio: the signature covers the public URL (base_url + path + query) and the params."""
    parts = urlsplit(url)
    headers = {"X-Twilio-Signature": sig if sig is not None else signature(token, url, params)}
    return client.post(parts.path + (f"?{parts.query}" if parts.query else ""), data=params, headers=headers)


def text_in(
    client: TestClient, twilio: FakeTwilio, url: str, body: str, *, sid: str, from_: str = "+447911000000"
) -> httpx.Response:
    params = {
        "MessageSid": sid,
        "AccountSid": twilio.account_sid,
        "From": from_,
        "To": "+447700900000",
        "Body": body,
    }
    return post_signed(client, twilio.auth_token, url, params)


def sms_state(runtime: Runtime, profile_id: int) -> str | None:
    with runtime.read_sessions() as db:
        return db.scalar(
            select(Subscription.state).where(
                Subscription.profile_id == profile_id, Subscription.channel == "sms", Subscription.topic == ""
            )
        )


def keyword_answers(runtime: Runtime, profile_id: int) -> list[Message]:
    with runtime.read_sessions() as db:
        rows = list(
            db.scalars(
                select(Message)
                .where(Message.profile_id == profile_id, Message.kind == "confirmation")
                .order_by(Message.id)
            ).all()
        )
        for row in rows:
            db.expunge(row)
        return rows


def test_forged_missing_or_misaddressed_signatures_are_refused(
    runtime: Runtime, tenant: Tenant, twilio: FakeTwilio, client: TestClient
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent="sms")
    url = inbound_url(runtime, tenant)
    params = {"MessageSid": "SMforged1", "From": "+447911000000", "To": "+447700900000", "Body": "STOP"}
    assert post_signed(client, twilio.auth_token, url, params, sig="AAAA").status_code == 403
    assert post_signed(client, "wrong-token", url, params).status_code == 403
    answer = client.post(urlsplit(url).path, data=params)  # no signature at all
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "bad_signature"
    # Signed for another URL (a replay against a different workspace or route).
    other = signature(twilio.auth_token, inbound_url(runtime, tenant, "status"), params)
    assert post_signed(client, twilio.auth_token, url, params, sig=other).status_code == 403
    # Unknown workspace: also 403 (nothing to verify with, nothing learnt).
    assert post_signed(client, twilio.auth_token, url.replace("/acme/", "/nope/"), params).status_code == 403
    # A tampered body under a valid signature.
    sig = signature(twilio.auth_token, url, params)
    assert (
        post_signed(client, twilio.auth_token, url, {**params, "Body": "hello"}, sig=sig).status_code == 403
    )
    assert sms_state(runtime, pid) == "subscribed"


def test_stop_opts_out_once_with_one_confirmation_even_when_repeated(
    runtime: Runtime, tenant: Tenant, twilio: FakeTwilio, sms_deliverer: Deliverer, client: TestClient
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent="sms")
    url = inbound_url(runtime, tenant)
    for _ in range(50):  # the same webhook 50 times (R21)
        answer = text_in(client, twilio, url, "Stop", sid="SMsame0001")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/xml")
    text_in(client, twilio, url, "STOP!!", sid="SMsecond01")  # the person says it again
    text_in(client, twilio, url, "please stop texting me", sid="SMthird001")
    assert sms_state(runtime, pid) == "unsubscribed"
    with runtime.read_sessions() as db:
        log = db.scalars(
            select(ConsentRecord).where(ConsentRecord.profile_id == pid, ConsentRecord.channel == "sms")
        ).all()
        receipts = db.scalar(select(func.count()).select_from(WebhookReceipt))
    withdrawals = [r for r in log if r.action == "withdrawn"]
    assert len(withdrawals) == 3  # one per distinct text, none for the 49 duplicates
    assert {r.source for r in withdrawals} == {"sms_keyword"}
    assert receipts == 3
    [answer_row] = keyword_answers(runtime, pid)
    assert answer_row.content["keyword_answer"] == "opt_out"
    assert len(events(runtime, pid, "sms_unsubscribed")) == 3

    # The confirmation reaches the person who just opted out; marketing does not.
    queue(runtime, tenant, pid, "promo:1", channel="sms", content={"body": "20% off today"})
    stats = sms_deliverer.drain()
    assert (stats.sent, stats.skipped) == (1, 1)
    [confirmation] = twilio.messages
    assert confirmation.to == "+447911000000"
    assert "unsubscribed" in confirmation.body and "START" in confirmation.body


def test_start_resubscribes_and_help_answers_the_configured_text(
    runtime: Runtime, tenant: Tenant, twilio: FakeTwilio, sms_deliverer: Deliverer, client: TestClient
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent="sms")
    url = inbound_url(runtime, tenant)
    text_in(client, twilio, url, "STOP", sid="SMa")
    text_in(client, twilio, url, "help", sid="SMb")  # help works for someone who opted out
    text_in(client, twilio, url, "Unstop", sid="SMc")
    text_in(client, twilio, url, "START", sid="SMd")  # already subscribed again: no second confirmation
    assert sms_state(runtime, pid) == "subscribed"
    assert [m.content["keyword_answer"] for m in keyword_answers(runtime, pid)] == [
        "opt_out",
        "help",
        "opt_in",
    ]
    sms_deliverer.drain()
    bodies = sorted(m.body for m in twilio.messages)
    assert HELP_TEXT in bodies
    assert len(bodies) == 3
    queue(runtime, tenant, pid, "promo:2", channel="sms", content={"body": "Back in stock"})
    assert sms_deliverer.drain().sent == 1


def test_a_reply_is_stored_on_the_timeline_and_linked_to_our_last_text(
    runtime: Runtime, tenant: Tenant, twilio: FakeTwilio, sms_deliverer: Deliverer, client: TestClient
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent="sms")
    sent = queue(runtime, tenant, pid, "promo:3", channel="sms", content={"body": "Table for two tonight?"})
    sms_deliverer.drain()
    body = "Yes please, 8pm for two — and can we sit outside? I'd love that."
    text_in(client, twilio, inbound_url(runtime, tenant), body, sid="SMreply1")
    text_in(client, twilio, inbound_url(runtime, tenant), body, sid="SMreply1")
    [reply] = events(runtime, pid, "sms_replied")
    assert reply.properties["body"] == body
    assert reply.properties["in_reply_to"] == sent.message_id
    assert sms_state(runtime, pid) == "subscribed"
    # A text from a number nobody has is accepted and changes nothing.
    assert (
        text_in(
            client, twilio, inbound_url(runtime, tenant), "STOP", sid="SMx", from_="+447911999999"
        ).status_code
        == 200
    )


def test_status_callbacks_mark_delivery_once_and_failures_dead(
    runtime: Runtime, tenant: Tenant, twilio: FakeTwilio, sms_deliverer: Deliverer, client: TestClient
) -> None:
    p0, p1 = make_people(runtime, tenant, 2, consent="sms")
    ok = queue(
        runtime, tenant, p0, "n:1", channel="sms", kind="service", content={"body": "Your order shipped"}
    )
    bad = queue(
        runtime, tenant, p1, "n:2", channel="sms", kind="service", content={"body": "Your order shipped"}
    )
    assert sms_deliverer.drain().sent == 2
    by_to = {m.to: m for m in twilio.messages}
    first, second = by_to["+447911000000"], by_to["+447911000001"]
    assert first.status_callback is not None
    assert first.status_callback.startswith(inbound_url(runtime, tenant, "status") + "?rapport_mid=")

    def callback(fake: FakeMessage, status: str, code: str | None = None) -> httpx.Response:
        params = {
            "MessageSid": fake.sid,
            "MessageStatus": status,
            "To": fake.to,
            "AccountSid": twilio.account_sid,
        }
        if code:
            params["ErrorCode"] = code
        return post_signed(client, twilio.auth_token, fake.status_callback or "", params)

    for _ in range(50):
        assert callback(first, "delivered").status_code == 200
    callback(first, "sent")  # late and out of order: changes nothing
    delivered = message(runtime, ok.message_id)
    assert delivered.status == "sent" and delivered.delivered_at == NOON
    assert delivered.provider_id == first.sid
    assert len(events(runtime, p0, "sms_delivered")) == 1

    callback(second, "undelivered", "30003")
    failed = message(runtime, bad.message_id)
    assert failed.status == "dead"
    assert failed.status_reason == "provider: undelivered (error 30003)"
    [event] = events(runtime, p1, "sms_failed")
    assert event.properties["error_code"] == "30003"
    # Forged callbacks are refused.
    params = {"MessageSid": first.sid, "MessageStatus": "failed"}
    assert post_signed(client, "nope", first.status_callback or "", params).status_code == 403
    assert message(runtime, ok.message_id).status == "sent"


def test_a_callback_settles_a_send_whose_answer_was_lost(
    runtime: Runtime, tenant: Tenant, twilio: FakeTwilio, client: TestClient
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent="sms")
    row = queue(runtime, tenant, pid, "n:3", channel="sms", kind="service", content={"body": "Code 1234"})
    with runtime.sessions() as db:
        stored = db.scalar(select(Message).where(Message.message_id == row.message_id))
        assert stored is not None
        stored.status, stored.provider_id = "unknown", "SMlost0001"
        db.commit()
    params = {"MessageSid": "SMlost0001", "MessageStatus": "delivered"}
    post_signed(client, twilio.auth_token, inbound_url(runtime, tenant, "status"), params)
    settled = message(runtime, row.message_id)
    assert (settled.status, settled.delivered_at) == ("sent", NOON)


_KEYWORD = st.sampled_from(OPT_OUT)
_CASE = st.sampled_from([str.upper, str.lower, str.title, lambda s: s])
_PUNCT = st.sampled_from(["", "!", ".", "!!", " ?", "…", " :(", "'"])
_LEAD = st.sampled_from(["", "please ", "pls ", "ok ", "  ", "\n", "i said "])
_TAIL = st.sampled_from(["", " now", " thanks", " please", " texting me", " asap"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keyword=_KEYWORD, case=_CASE, punct=_PUNCT, lead=_LEAD, tail=_TAIL)
def test_every_stop_variant_opts_out_through_the_webhook(
    runtime: Runtime,
    tenant: Tenant,
    twilio: FakeTwilio,
    client: TestClient,
    keyword: str,
    case: object,
    punct: str,
    lead: str,
    tail: str,
) -> None:
    pid = _person(runtime, tenant)
    with runtime.sessions() as db:  # subscribed again before each variant
        consent_service.record(
            db, workspace_id=tenant.workspace_id, profile_id=pid, now=runtime.clock.now(),
            statement=consent_service.Statement(channel="sms", action="granted", source="test"),
        )  # fmt: skip
        db.commit()
    body = lead + case(keyword) + punct + tail  # type: ignore[operator]
    answer = text_in(client, twilio, inbound_url(runtime, tenant), body, sid=f"SM{uuid.uuid4().hex}")
    assert answer.status_code == 200
    assert sms_state(runtime, pid) == "unsubscribed", body


def _person(runtime: Runtime, tenant: Tenant) -> int:
    key = "hypothesis_person"
    found = runtime.ports.get(key)
    if found is None:
        [found] = make_people(runtime, tenant, 1, consent="sms")
        runtime.ports[key] = found
    return int(found)


def test_the_sms_channel_comes_from_the_settings_and_asks_for_status_callbacks(
    runtime: Runtime, tenant: Tenant
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent="sms")
    with FakeTwilio() as fake:
        configured = runtime.settings.model_copy(
            update={
                "twilio_base_url": fake.base_url,
                "twilio_account_sid": fake.account_sid,
                "twilio_auth_token": fake.auth_token,
                "sms_from": "+447700900123",
                "outbound_allow_loopback": True,
            }
        )
        rt = build_runtime(configured, clock=runtime.clock)
        wire_runtime(rt)
        assert isinstance(channels_of(rt)["sms"], TwilioSmsChannel)
        sent = queue(rt, tenant, pid, "cfg:1", channel="sms", kind="service", content={"body": "Hi"})
        deliverer = Deliverer(rt, worker_id="cfg-deliverer")
        try:
            assert deliverer.drain().sent == 1
        finally:
            deliverer.close()
            channels_of(rt)["sms"].close()
        [got] = fake.messages
        assert got.from_ == "+447700900123"
        assert got.status_callback == (
            f"{runtime.settings.base_url}/webhooks/twilio/{tenant.slug}/status?rapport_mid={sent.message_id}"
        )
        # Verified with the token from the settings (the workspace has none of its own).
        params = {"MessageSid": got.sid, "MessageStatus": "delivered"}
        with TestClient(create_app(configured, runtime=rt, start_worker=False)) as client:
            assert post_signed(client, fake.auth_token, got.status_callback, params).status_code == 200
        rt.close()
    assert message(runtime, sent.message_id).delivered_at == NOON


@pytest.mark.parametrize("same_sid", [False, True], ids=["distinct", "duplicates"])
def test_concurrent_stops_confirm_once(
    runtime: Runtime, tenant: Tenant, twilio: FakeTwilio, same_sid: bool
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent="sms")
    url = inbound_url(runtime, tenant)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def stop(n: int) -> None:
        params = {
            "MessageSid": "SMconc" if same_sid else f"SMconc{n}",
            "From": "+447911000000",
            "To": "+447700900000",
            "Body": "STOP",
        }
        try:
            barrier.wait()
            inbound.handle_twilio_inbound(
                runtime, tenant.slug, url, sms_form(params), signature(twilio.auth_token, url, params)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=stop, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sms_state(runtime, pid) == "unsubscribed"
    assert len(keyword_answers(runtime, pid)) == 1
    with runtime.read_sessions() as db:
        withdrawals = db.scalar(
            select(func.count()).where(ConsentRecord.profile_id == pid, ConsentRecord.action == "withdrawn")
        )
    assert withdrawals == (1 if same_sid else 8)


def sms_form(params: dict[str, str]) -> dict[str, list[str]]:
    return {k: [v] for k, v in params.items()}


class _LiveApp:
    """The app under a real uvicorn server on 127.0.0.1 (for webhooks the fake Twilio itself posts)."""

    def __init__(self, runtime: Runtime) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(runtime.settings, runtime=runtime, start_worker=False),
                host="127.0.0.1",
                port=int(urlsplit(runtime.settings.base_url).port or 0),
                log_level="warning",
                lifespan="on",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _LiveApp:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_the_fake_twilio_posts_to_a_live_server_and_the_loop_closes(runtime: Runtime, tenant: Tenant) -> None:
    [pid] = make_people(runtime, tenant, 1, consent="sms")
    with FakeTwilio() as fake:
        live = runtime.settings.model_copy(
            update={
                "base_url": f"http://127.0.0.1:{free_port()}",
                "twilio_base_url": fake.base_url,
                "twilio_account_sid": fake.account_sid,
                "twilio_auth_token": fake.auth_token,
                "sms_from": "+447700900123",
                "outbound_allow_loopback": True,
            }
        )
        rt = build_runtime(live, clock=runtime.clock)
        wire_runtime(rt)
        deliverer = Deliverer(rt, worker_id="live-deliverer")
        try:
            with _LiveApp(rt):
                url = f"{live.base_url}/webhooks/twilio/{tenant.slug}/sms"
                answer = fake.send_inbound(url, from_="+447911000000", to="+447700900123", body="Stop.")
                assert answer.status_code == 200, answer.text
                assert sms_state(runtime, pid) == "unsubscribed"
                assert deliverer.drain().sent == 1
                [confirmation] = fake.messages
                assert "START" in confirmation.body
                assert fake.deliver(confirmation).status_code == 200
                forged = httpx.post(url, data={"MessageSid": "SMf", "Body": "START"}, timeout=5)
                assert forged.status_code == 403
        finally:
            deliverer.close()
            channels_of(rt)["sms"].close()
            rt.close()
    [answer_row] = keyword_answers(runtime, pid)
    assert message(runtime, answer_row.message_id).delivered_at == NOON
    assert sms_state(runtime, pid) == "unsubscribed"
