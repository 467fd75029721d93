"""Signed outgoing webhooks against a local HTTP server, and the receiver-side verification."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from rapport.channels.base import OutboundMessage, SendStatus, WebhookPayload
from rapport.channels.net import SafeHttpClient
from rapport.channels.webhook import WebhookChannel, signature_header, verify_signature
from rapport.kit.clock import FakeClock
from tests.channels.local_http import LocalHttpServer, Recorded, Reply

SECRET = "whsec_test"


def hook(n: int, url: str, body: dict[str, object] | None = None) -> OutboundMessage:
    document = body if body is not None else {"event": "campaign.sent", "profile": {"name": "Zoë"}, "n": n}
    return OutboundMessage(
        message_id=f"m{n}", channel="webhook", to=url, webhook=WebhookPayload(url=url, body=document)
    )


def channel(clock: FakeClock, **http: object) -> WebhookChannel:
    options: dict[str, object] = {"allow_loopback": True, "timeout": 3.0, **http}
    client = SafeHttpClient(**options)  # type: ignore[arg-type]
    return WebhookChannel(secret=SECRET, http=client, clock=clock)


def test_post_is_signed_and_verifiable() -> None:
    clock = FakeClock()
    with LocalHttpServer() as server:
        webhooks = channel(clock)
        [result] = webhooks.send([hook(1, server.url("/hooks/rapport"))])
        webhooks.close()
    assert result.status is SendStatus.SENT
    [got] = server.requests
    assert json.loads(got.body) == {"event": "campaign.sent", "profile": {"name": "Zoë"}, "n": 1}
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-rapport-message-id"] == "m1"
    header = got.headers["x-rapport-signature"]
    now = clock.now().timestamp()
    t = int(now)
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + got.body, hashlib.sha256).hexdigest()
    assert header == f"t={t},v1={expected}"  # computed here independently
    assert verify_signature(SECRET, header, got.body, now=now)
    assert verify_signature(SECRET, header, got.body, now=now + 299)
    assert not verify_signature(SECRET, header, got.body, now=now + 301)  # replayed too late
    assert not verify_signature(SECRET, header, got.body, now=now - 301)  # from the future
    assert not verify_signature(SECRET, header, got.body + b" ", now=now)
    assert not verify_signature("other", header, got.body, now=now)


@pytest.mark.parametrize(
    "header", [None, "", "v1=abc", "t=abc,v1=abc", "t=1700000000", "garbage", "t=1700000000,v1=é"]
)
def test_malformed_headers_fail(header: str | None) -> None:
    assert not verify_signature(SECRET, header, b"{}", now=1_700_000_000)


def test_rotated_secrets_verify_with_either_signature() -> None:
    body = b'{"a":1}'
    old = signature_header("old-secret", 1_700_000_000, body)
    new = signature_header("new-secret", 1_700_000_000, body)
    both = f"{new},{old.split(',')[1]}"
    assert verify_signature("old-secret", both, body, now=1_700_000_010)
    assert verify_signature("new-secret", both, body, now=1_700_000_010)


def test_answers_are_classified() -> None:
    def respond(request: Recorded) -> Reply:
        return {
            "/busy": Reply(429, {"Retry-After": "30"}),
            "/down": Reply(503),
            "/gone": Reply(404),
            "/moved": Reply(302, {"Location": "http://10.0.0.1/"}),
            "/bad": Reply(400, body=b"bad payload"),
        }.get(request.path, Reply(204, body=b""))

    clock = FakeClock()
    with LocalHttpServer(respond) as server:
        webhooks = channel(clock)
        paths = ["/ok", "/busy", "/down", "/gone", "/moved", "/bad"]
        results = webhooks.send([hook(n, server.url(p)) for n, p in enumerate(paths)])
        webhooks.close()
    assert [(r.status, r.error_code) for r in results] == [
        (SendStatus.SENT, None),
        (SendStatus.FAILED_TRANSIENT, "429"),
        (SendStatus.FAILED_TRANSIENT, "503"),
        (SendStatus.FAILED_PERMANENT, "404"),
        (SendStatus.FAILED_PERMANENT, "302"),  # redirects are not followed
        (SendStatus.FAILED_PERMANENT, "400"),
    ]
    assert results[1].retry_after == 30
    assert [r.path for r in server.requests] == paths


def test_private_targets_are_refused_and_timeouts_are_unknown() -> None:
    def respond(request: Recorded) -> Reply:
        time.sleep(1.0)
        return Reply()

    clock = FakeClock()
    webhooks = WebhookChannel(secret=SECRET, clock=clock)  # default client: no loopback
    results = webhooks.send([hook(1, "http://169.254.169.254/latest"), hook(2, "http://127.0.0.1:9/")])
    assert [(r.status, r.error_code) for r in results] == [
        (SendStatus.FAILED_PERMANENT, "outbound_refused")
    ] * 2
    with LocalHttpServer(respond) as server:
        slow = channel(clock, timeout=0.3)
        [result] = slow.send([hook(3, server.url("/slow"))])
        slow.close()
    assert result.status is SendStatus.UNKNOWN  # the request was written; the answer never came
