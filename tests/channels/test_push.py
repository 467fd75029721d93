"""Web Push with VAPID against a local push endpoint: the request is authorised, encrypted, classified."""

from __future__ import annotations

import base64
import json
import os

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from rapport.channels.base import OutboundMessage, PushPayload, PushSubscription, SendStatus
from rapport.channels.net import SafeHttpClient
from rapport.channels.push import WebPushChannel
from tests.channels.local_http import LocalHttpServer, Recorded, Reply


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def browser_keys() -> tuple[ec.EllipticCurvePrivateKey, str, bytes]:
    """What a browser makes when subscribing: a P-256 key pair and a 16-byte auth secret."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return private, b64url(public), os.urandom(16)


def vapid_pem() -> bytes:
    vapid = Vapid02()
    vapid.generate_keys()
    return bytes(vapid.private_pem())


def push(n: int, endpoint: str, p256dh: str, auth: bytes) -> OutboundMessage:
    return OutboundMessage(
        message_id=f"m{n}",
        channel="push",
        to="profile-7",
        push=PushPayload(
            title="Zoë, your basket misses you",
            body="20% off until midnight",
            url="https://shop.example/basket",
            subscription=PushSubscription(endpoint=endpoint, p256dh=p256dh, auth=b64url(auth)),
            ttl_seconds=3600,
        ),
    )


def respond(request: Recorded) -> Reply:
    if request.path.startswith("/gone"):
        return Reply(410, body=b"subscription expired")
    if request.path.startswith("/missing"):
        return Reply(404)
    if request.path.startswith("/busy"):
        return Reply(429, {"Retry-After": "60"})
    return Reply(201, {"Location": f"https://push.example/m/{request.path.rsplit('/', 1)[-1]}"}, b"")


def test_push_is_vapid_signed_and_encrypted_for_the_subscription() -> None:
    private, p256dh, auth = browser_keys()
    with LocalHttpServer(respond) as service:
        channel = WebPushChannel(
            vapid_private_key=vapid_pem(),
            vapid_subject="mailto:ops@shop.example",
            http=SafeHttpClient(allow_loopback=True, timeout=5),
        )
        [result] = channel.send([push(1, service.url("/wpush/v2/abc123"), p256dh, auth)])
        channel.close()

    assert result.status is SendStatus.SENT
    assert result.provider_id == "https://push.example/m/abc123"
    [got] = service.requests
    assert got.method == "POST" and got.path == "/wpush/v2/abc123"
    assert got.headers["content-encoding"] == "aes128gcm"
    assert got.headers["ttl"] == "3600"
    authorization = got.headers["authorization"]
    assert authorization.startswith("vapid t=") and ",k=" in authorization
    assert Vapid02.verify(authorization)
    claims = json.loads(b64url_decode(authorization.split("t=")[1].split(",")[0].split(".")[1]))
    assert claims["aud"] == f"http://127.0.0.1:{service.port}"
    assert claims["sub"] == "mailto:ops@shop.example"
    assert b"basket" not in got.body  # the payload travels encrypted
    plain = http_ece.decrypt(got.body, private_key=private, auth_secret=auth, version="aes128gcm")
    assert json.loads(plain) == {
        "title": "Zoë, your basket misses you",
        "body": "20% off until midnight",
        "url": "https://shop.example/basket",
        "icon": None,
        "message_id": "m1",
    }


def test_expired_subscriptions_are_reported_gone() -> None:
    _, p256dh, auth = browser_keys()
    with LocalHttpServer(respond) as service:
        channel = WebPushChannel(
            vapid_private_key=vapid_pem(),
            vapid_subject="mailto:ops@shop.example",
            http=SafeHttpClient(allow_loopback=True, timeout=5),
        )
        paths = ["/gone/1", "/missing/2", "/busy/3", "/ok/4"]
        results = channel.send([push(n, service.url(p), p256dh, auth) for n, p in enumerate(paths)])
        channel.close()
    assert [(r.status, r.gone) for r in results] == [
        (SendStatus.FAILED_PERMANENT, True),
        (SendStatus.FAILED_PERMANENT, True),
        (SendStatus.FAILED_TRANSIENT, False),
        (SendStatus.SENT, False),
    ]
    assert results[2].retry_after == 60


def test_bad_subscription_and_unlisted_push_service_are_permanent() -> None:
    _, p256dh, auth = browser_keys()
    channel = WebPushChannel(vapid_private_key=vapid_pem(), vapid_subject="mailto:ops@shop.example")
    results = channel.send(
        [
            push(1, "https://evil.example/wpush", p256dh, auth),
            push(2, "https://fcm.googleapis.com/x", "bm90LWEta2V5", auth),
        ]
    )
    assert [(r.status, r.error_code) for r in results] == [
        (SendStatus.FAILED_PERMANENT, "outbound_refused"),
        (SendStatus.FAILED_PERMANENT, "invalid_subscription"),
    ]
