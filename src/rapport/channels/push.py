"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291).

pywebpush encrypts the payload for the subscription's keys and py_vapid signs the ``Authorization: vapid
t=…,k=…`` header; the POST itself goes through ``SafeHttpClient`` (R24), whose default allow-list is the
browsers' push services. Outcomes: 201/202 → sent (the ``Location`` is the provider id); 404/410 →
failed_permanent with ``gone=True`` so the caller deletes the subscription; 429/5xx → failed_transient;
other 4xx (bad VAPID key, payload too large) → failed_permanent.

The service worker receives the JSON ``{"title", "body", "url", "icon", "message_id"}``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from rapport.channels.base import (
    NULL_JOURNAL,
    OutboundMessage,
    SendJournal,
    SendResult,
    SendStatus,
    permanent,
    transient,
)
from rapport.channels.net import (
    OutboundRefused,
    ResponseTooLarge,
    ResponseTooSlow,
    SafeHttpClient,
    may_have_arrived,
)

PUSH_SERVICE_HOSTS = frozenset(
    {
        "fcm.googleapis.com",
        "updates.push.services.mozilla.com",
        "*.push.services.mozilla.com",
        "*.notify.windows.com",
        "web.push.apple.com",
        "*.push.apple.com",
    }
)
_TOKEN_SECONDS = 12 * 3600


def load_vapid(private_key: str | bytes) -> object:
    """Return a py_vapid ``Vapid02`` for a PEM, base64url DER or base64url raw private key."""
    from py_vapid import Vapid02

    text = private_key.decode("ascii") if isinstance(private_key, bytes) else private_key
    if "-----BEGIN" in text:
        return Vapid02.from_pem(text.encode("ascii"))
    return Vapid02.from_string(text.strip())


class WebPushChannel:
    """Sends encrypted Web Push messages signed with the application's VAPID key."""

    supports_journal = True

    def __init__(
        self,
        *,
        vapid_private_key: str | bytes,
        vapid_subject: str,
        http: SafeHttpClient | None = None,
        name: str = "push",
    ) -> None:
        if not vapid_subject.startswith(("mailto:", "https://")):
            raise ValueError("vapid_subject must be a mailto: or https: URL")
        self.name = name
        self.vapid = load_vapid(vapid_private_key)
        self.vapid_subject = vapid_subject
        self.http = http or SafeHttpClient(allowed_hosts=PUSH_SERVICE_HOSTS, max_response_bytes=64_000)
        self._tokens: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _authorization(self, endpoint: str) -> str:
        """Return a VAPID Authorization header for the endpoint's origin, reused until near expiry."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time()
        with self._lock:
            cached = self._tokens.get(audience)
            if cached is not None and cached[0] - now > 600:
                return cached[1]
            expires = int(now) + _TOKEN_SECONDS
            claims = {"aud": audience, "sub": self.vapid_subject, "exp": expires}
            header = str(self.vapid.sign(claims)["Authorization"])  # type: ignore[attr-defined]
            self._tokens[audience] = (expires, header)
            return header

    def send(self, batch: Sequence[OutboundMessage], journal: SendJournal | None = None) -> list[SendResult]:
        """Encrypt and post each message to its subscription's push service."""
        notes = journal if journal is not None else NULL_JOURNAL
        return [self._send_one(message, notes) for message in batch]

    def _send_one(self, message: OutboundMessage, journal: SendJournal) -> SendResult:
        from pywebpush import WebPusher, WebPushException

        push = message.push
        if push is None:
            return permanent(message, "message has no push payload", code="no_payload")
        document = {
            "title": push.title,
            "body": push.body,
            "url": push.url,
            "icon": push.icon,
            "message_id": message.message_id,
        }
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        try:
            body = WebPusher(push.subscription.as_info()).encode(data, "aes128gcm")["body"]
        except (WebPushException, ValueError, TypeError) as exc:
            result = permanent(message, f"invalid subscription: {exc}", code="invalid_subscription")
            return SendResult(
                result.message_id, result.status, error=result.error, error_code=result.error_code, gone=True
            )
        headers = {
            "Authorization": self._authorization(push.subscription.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(max(0, push.ttl_seconds)),
            "Urgency": push.urgency,
        }
        journal.committing(message.message_id)
        try:
            response = self.http.request(
                "POST", push.subscription.endpoint, headers=headers, content=bytes(body)
            )
        except OutboundRefused as exc:
            return permanent(message, exc.message, code=exc.code)
        except (ResponseTooLarge, ResponseTooSlow) as exc:
            return SendResult(message.message_id, SendStatus.UNKNOWN, error=exc.message, error_code=exc.code)
        except Exception as exc:
            if may_have_arrived(exc):
                return SendResult(
                    message.message_id, SendStatus.UNKNOWN, error=f"{type(exc).__name__}: {exc}"
                )
            return transient(message, f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            location = response.headers.get("location")
            journal.accepted(message.message_id, location)
            return SendResult(message.message_id, SendStatus.SENT, provider_id=location)
        error = f"HTTP {status}: {response.text[:200]}"
        if status in (404, 410):
            return SendResult(
                message.message_id,
                SendStatus.FAILED_PERMANENT,
                error=error,
                error_code=str(status),
                gone=True,
            )
        if status == 429 or status >= 500:
            retry = response.headers.get("retry-after", "")
            return transient(
                message, error, code=str(status), retry_after=float(retry) if retry.isdigit() else None
            )
        return permanent(message, error, code=str(status))

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()
