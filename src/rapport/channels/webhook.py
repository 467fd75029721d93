"""Signed outgoing webhooks (for chat apps or anything that takes a JSON POST), and their verification.

Each POST carries::

    Content-Type: application/json
    X-Rapport-Message-Id: <our idempotency key; receivers dedupe on it>
    X-Rapport-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

Receivers call ``verify_signature(secret, header, body, now=…, tolerance=300)``: it accepts any ``v1`` that
matches (so a secret can be rotated by signing with both), compares in constant time, and refuses
timestamps older or newer than the tolerance (replays). Sending goes through ``SafeHttpClient`` (R24):
redirects are not followed, private addresses are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

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
from rapport.kit.clock import Clock, SystemClock

SIGNATURE_HEADER = "X-Rapport-Signature"
MESSAGE_ID_HEADER = "X-Rapport-Message-Id"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return mac.hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``X-Rapport-Signature`` value ``t=…,v1=…``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str | None, body: bytes, *, now: float, tolerance: int = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance`` of now."""
    if not header or not secret:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    ok = False
    for candidate in candidates:
        ok |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    return ok


def encode_body(document: object) -> bytes:
    """Serialise a webhook document as compact UTF-8 JSON (the exact bytes that are signed)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


class WebhookChannel:
    """POSTs each message's JSON document to its URL, signed with the channel's secret."""

    supports_journal = True

    def __init__(
        self,
        *,
        secret: str,
        http: SafeHttpClient | None = None,
        clock: Clock | None = None,
        name: str = "webhook",
    ) -> None:
        if not secret:
            raise ValueError("a webhook channel needs a signing secret")
        self.name = name
        self.secret = secret
        self.http = http or SafeHttpClient(max_response_bytes=64_000, timeout=10.0, total_timeout=15.0)
        self.clock = clock or SystemClock()

    def send(self, batch: Sequence[OutboundMessage], journal: SendJournal | None = None) -> list[SendResult]:
        """Sign and POST each message; 2xx is sent, 408/429/5xx transient, other answers permanent."""
        notes = journal if journal is not None else NULL_JOURNAL
        return [self._send_one(message, notes) for message in batch]

    def _send_one(self, message: OutboundMessage, journal: SendJournal) -> SendResult:
        if message.webhook is None:
            return permanent(message, "message has no webhook payload", code="no_payload")
        body = encode_body(message.webhook.body)
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            MESSAGE_ID_HEADER: message.message_id,
            SIGNATURE_HEADER: signature_header(self.secret, timestamp, body),
        }
        journal.committing(message.message_id)
        try:
            response = self.http.request("POST", message.webhook.url, headers=headers, content=body)
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
            journal.accepted(message.message_id, None)
            return SendResult(message.message_id, SendStatus.SENT, provider_id=f"http-{status}")
        error = f"HTTP {status}: {response.text[:200]}"
        if status in (408, 425, 429) or status >= 500:
            retry = response.headers.get("retry-after", "")
            return transient(
                message, error, code=str(status), retry_after=float(retry) if retry.isdigit() else None
            )
        return permanent(message, error, code=str(status))

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()
