"""The channel port: what every delivery adapter (email, SMS, push, webhook, fake) looks like.

A channel takes a batch of ``OutboundMessage`` and answers one ``SendResult`` per message, in the same
order. It never raises for a per-message failure; the status says what happened::

    sent               the provider accepted the message (provider_id says under which id)
    failed_transient   try again later (4xx SMTP reply, HTTP 429/5xx, connection refused ...)
    failed_permanent   do not retry (5xx SMTP reply, HTTP 4xx, invalid address, header injection ...)
    unknown            the provider may or may not have it (connection lost after the SMTP end-of-data
                       "." or after an HTTP request was fully written); never resend blindly (R8)

Example::

    channel = FakeChannel("email")
    message = OutboundMessage(
        message_id="cmp42-prof7-email",
        channel="email",
        to="ada@example.com",
        email=EmailPayload(subject="Hello", from_address="news@shop.example", text="Hi Ada"),
    )
    [result] = channel.send([message])
    assert result.status is SendStatus.SENT
    channel.close()

``message_id`` is our idempotency key: the outbox makes it unique per campaign x recipient x channel, and
adapters reuse it (SMTP Message-ID, webhook ``X-Rapport-Message-Id``) so a retry is recognisable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class SendStatus(StrEnum):
    """What a provider said about one message."""

    SENT = "sent"
    FAILED_TRANSIENT = "failed_transient"
    FAILED_PERMANENT = "failed_permanent"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class EmailPayload:
    """The email-specific part of a message; personalised values are made header-safe by the builder."""

    subject: str
    from_address: str
    from_name: str = ""
    to_name: str = ""
    reply_to: str | None = None
    text: str | None = None
    html: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    envelope_from: str | None = None


@dataclass(frozen=True, slots=True)
class SmsPayload:
    """The SMS-specific part of a message; ``to`` of the message is an E.164 number."""

    body: str
    from_number: str | None = None
    status_callback: str | None = None


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A browser's Web Push subscription (``PushSubscription.toJSON()``)."""

    endpoint: str
    p256dh: str
    auth: str

    def as_info(self) -> dict[str, Any]:
        """Return the subscription in the JSON shape browsers and pywebpush use."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


@dataclass(frozen=True, slots=True)
class PushPayload:
    """The push-specific part of a message: what the service worker shows, and where to send it."""

    title: str
    body: str
    subscription: PushSubscription
    url: str | None = None
    icon: str | None = None
    ttl_seconds: int = 86400
    urgency: str = "normal"


@dataclass(frozen=True, slots=True)
class WebhookPayload:
    """The webhook-specific part of a message: the target URL and the JSON document to POST."""

    url: str
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message to one recipient on one channel; exactly one payload matches ``channel``."""

    message_id: str
    channel: str
    to: str
    email: EmailPayload | None = None
    sms: SmsPayload | None = None
    push: PushPayload | None = None
    webhook: WebhookPayload | None = None


#: The longest provider id kept (``messages.provider_id`` is VARCHAR(200)): a provider's longer id keeps its
#: first characters, so recording a message that went out can never fail on it.
PROVIDER_ID_MAX = 200


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome for one message; ``gone`` means the address no longer exists (push 404/410)."""

    message_id: str
    status: SendStatus
    provider_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    gone: bool = False
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.provider_id is not None and len(self.provider_id) > PROVIDER_ID_MAX:
            object.__setattr__(self, "provider_id", self.provider_id[:PROVIDER_ID_MAX])

    @property
    def ok(self) -> bool:
        """Whether the provider accepted the message."""
        return self.status is SendStatus.SENT


@runtime_checkable
class Channel(Protocol):
    """A delivery adapter: ``name``, ``send(batch) -> results`` (one per message, same order), ``close()``."""

    name: str

    def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        """Hand each message to the provider and say what happened to it."""
        ...

    def close(self) -> None:
        """Release connections; the channel is not used afterwards."""
        ...


class SendJournal(Protocol):
    """Where an adapter notes the point of no return and the provider's acceptance (crash recovery, R6/R8).

    Adapters that set ``supports_journal = True`` accept ``send(batch, journal=…)`` and call
    ``committing(message_id)`` just before the provider can first have the message (before the SMTP
    end-of-data ``.``, before an HTTP request is written) and ``accepted(message_id, provider_id)`` once it
    said yes. A message with neither line was never seen by the provider and may be sent again.
    """

    def committing(self, message_id: str) -> None:
        """Record that the provider may have ``message_id`` from now on."""
        ...

    def accepted(self, message_id: str, provider_id: str | None) -> None:
        """Record that the provider accepted ``message_id``."""
        ...


class NullJournal:
    """A journal that records nothing (the default when the caller keeps none)."""

    def committing(self, message_id: str) -> None:
        """Do nothing."""

    def accepted(self, message_id: str, provider_id: str | None) -> None:
        """Do nothing."""


NULL_JOURNAL = NullJournal()


def permanent(message: OutboundMessage, error: str, *, code: str | None = None) -> SendResult:
    """Build a ``failed_permanent`` result for ``message``."""
    return SendResult(message.message_id, SendStatus.FAILED_PERMANENT, error=error, error_code=code)


def transient(
    message: OutboundMessage, error: str, *, code: str | None = None, retry_after: float | None = None
) -> SendResult:
    """Build a ``failed_transient`` result for ``message``."""
    return SendResult(
        message.message_id, SendStatus.FAILED_TRANSIENT, error=error, error_code=code, retry_after=retry_after
    )
