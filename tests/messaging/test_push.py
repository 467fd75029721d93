"""Web Push end to end: the SDK registers browsers, the outbox fans out to each, gone ones are removed.

The push service is a real HTTP server on 127.0.0.1; payloads are decrypted with the browser's keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import http_ece
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.app import wire_runtime
from rapport.config import Settings
from rapport.consent import service as consent_service
from rapport.kit.clock import FakeClock
from rapport.messaging.delivery import Deliverer, channels_of
from rapport.messaging.push_delivery import PushFanoutChannel
from rapport.models import PushSubscriptionRecord
from rapport.runtime import Runtime
from tests.channels.local_http import LocalHttpServer, Recorded, Reply
from tests.channels.test_push import b64url, browser_keys, vapid_pem
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import NOON, events, message, queue
from tests.support.tenants import Tenant


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-0123456789",
        run_worker_in_process=False,
        db_pool_size=8,
        spool_dir=str(tmp_path / "spool"),
        vapid_private_key=vapid_pem().decode(),
        vapid_subject="mailto:ops@hartley.example",
        outbound_allow_loopback=True,
    )


def _respond(request: Recorded) -> Reply:
    if request.path.startswith("/gone"):
        return Reply(410, body=b"expired")
    return Reply(201, {"Location": f"https://push.example/m{request.path}"}, b"")


@pytest.fixture
def push_service() -> Iterator[LocalHttpServer]:
    with LocalHttpServer(_respond) as server:
        yield server


@pytest.fixture
def push_deliverer(runtime: Runtime) -> Iterator[Deliverer]:
    wire_runtime(runtime)  # registers the push channel from the settings
    d = Deliverer(runtime, worker_id="push-deliverer", batch_size=25)
    yield d
    d.close()


class Browser:
    """A browser's subscription keys, able to decrypt what the push service was sent for it."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.private, self.p256dh, self.auth = browser_keys()

    def subscription(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)}}

    def read(self, request: Recorded) -> dict[str, Any]:
        plain = http_ece.decrypt(
            request.body, private_key=self.private, auth_secret=self.auth, version="aes128gcm"
        )
        return dict(json.loads(plain))


def subscribe(client: TestClient, tenant: Tenant, browser: Browser, user_id: str = "p0") -> Any:
    return client.post(
        "/v1/push/subscribe",
        json={"userId": user_id, "subscription": browser.subscription(), "userAgent": "Firefox/140"},
        headers=tenant.write_headers,
    )


def subscriptions(runtime: Runtime) -> list[tuple[int, str]]:
    with runtime.read_sessions() as db:
        return [
            (s.profile_id, s.endpoint)
            for s in db.scalars(select(PushSubscriptionRecord).order_by(PushSubscriptionRecord.id)).all()
        ]


def test_a_push_reaches_every_browser_and_gone_subscriptions_are_removed(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    push_service: LocalHttpServer,
    push_deliverer: Deliverer,
) -> None:
    [pid] = make_people(runtime, tenant, 1, consent="push")
    assert isinstance(channels_of(runtime)["push"], PushFanoutChannel)
    laptop, phone, old = (
        Browser(push_service.url(p)) for p in ("/wpush/laptop", "/wpush/phone", "/gone/old")
    )
    for browser in (laptop, phone, old):
        answer = subscribe(client, tenant, browser)
        assert answer.status_code == 201, answer.text
    assert subscribe(client, tenant, laptop).status_code == 201  # registering again is harmless
    assert [p for p, _ in subscriptions(runtime)] == [pid, pid, pid]

    content = {
        "title": "Hi {{ profile.first_name }}",
        "body": "Your basket misses you",
        "url": "https://shop.example/b",
    }
    sent = queue(runtime, tenant, pid, "push:1", channel="push", content=content)
    stats = push_deliverer.drain()
    assert stats.sent == 1
    by_path = {r.path: r for r in push_service.requests}
    assert set(by_path) == {"/wpush/laptop", "/wpush/phone", "/gone/old"}
    for browser, path in ((laptop, "/wpush/laptop"), (phone, "/wpush/phone")):
        assert browser.read(by_path[path]) == {
            "title": "Hi Person0",
            "body": "Your basket misses you",
            "url": "https://shop.example/b",
            "icon": None,
            "message_id": sent.message_id,
        }
    assert [e for _, e in subscriptions(runtime)] == [laptop.endpoint, phone.endpoint]
    with runtime.read_sessions() as db:
        assert all(s.last_success_at == NOON for s in db.scalars(select(PushSubscriptionRecord)).all())
    assert message(runtime, sent.message_id).status == "sent"
    assert len(events(runtime, pid, "push_sent")) == 1

    # Unsubscribing a browser: the next push goes to the other one only.
    push_service.requests.clear()
    gone = client.request(
        "DELETE", "/v1/push/subscribe", json={"endpoint": phone.endpoint}, headers=tenant.write_headers
    )
    assert gone.json() == {"success": True, "removed": 1}
    queue(runtime, tenant, pid, "push:2", channel="push", content=content)
    push_deliverer.drain()
    assert [r.path for r in push_service.requests] == ["/wpush/laptop"]


def test_marketing_push_needs_consent_and_a_subscription(
    runtime: Runtime,
    tenant: Tenant,
    client: TestClient,
    push_service: LocalHttpServer,
    push_deliverer: Deliverer,
) -> None:
    p0, p1 = make_people(runtime, tenant, 2, consent=None)
    subscribe(client, tenant, Browser(push_service.url("/wpush/p0")))
    content = {"title": "Sale", "body": "Today only"}
    no_consent = queue(runtime, tenant, p0, "m:1", channel="push", content=content)
    nobody = queue(runtime, tenant, p1, "m:2", channel="push", content=content, kind="service")
    push_deliverer.drain()
    assert message(runtime, no_consent.message_id).status == "skipped"  # subscribing is not consent (R16)
    dead = message(runtime, nobody.message_id)
    assert dead.status == "dead" and "no push subscription" in (dead.status_reason or "")
    assert push_service.requests == []
    with runtime.sessions() as db:
        consent_service.record(
            db, workspace_id=tenant.workspace_id, profile_id=p0, now=NOON,
            statement=consent_service.Statement(channel="push", action="granted", source="test"),
        )  # fmt: skip
        db.commit()
    queue(runtime, tenant, p0, "m:3", channel="push", content=content)
    assert push_deliverer.drain().sent == 1
    assert [r.path for r in push_service.requests] == ["/wpush/p0"]


def test_the_subscription_api_checks_key_identity_and_endpoint(
    runtime: Runtime, tenant: Tenant, other_tenant: Tenant, client: TestClient
) -> None:
    p0, p1 = make_people(runtime, tenant, 2, consent=None)
    browser = Browser("https://fcm.googleapis.com/fcm/send/abc123")
    assert (
        client.post(
            "/v1/push/subscribe", json={"userId": "p0", "subscription": browser.subscription()}
        ).status_code
        == 401
    )
    unknown = subscribe(client, tenant, browser, user_id="nobody")
    assert unknown.status_code == 404
    # Another workspace's write key cannot attach a browser to this workspace's person.
    assert subscribe(client, other_tenant, browser).status_code == 404
    assert subscribe(client, tenant, browser).status_code == 201
    assert subscriptions(runtime) == [(p0, browser.endpoint)]
    # The same browser signing in as someone else moves to that person.
    assert subscribe(client, tenant, browser, user_id="p1").status_code == 201
    assert subscriptions(runtime) == [(p1, browser.endpoint)]
    bad = client.post(
        "/v1/push/subscribe",
        json={"userId": "p0", "subscription": {**browser.subscription(), "endpoint": "ftp://x.example/a"}},
        headers=tenant.write_headers,
    )
    assert bad.status_code == 400
