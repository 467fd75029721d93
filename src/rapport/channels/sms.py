"""SMS through a Twilio-compatible REST API, and verification of its signed webhooks (R21).

Sending: ``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with form fields ``To``,
``From`` (or ``MessagingServiceSid``), ``Body`` and ``StatusCallback``, HTTP Basic auth (SID, token).
Outcomes: 2xx with a message ``sid`` → sent; 429 and 5xx → failed_transient (Retry-After kept); other
4xx → failed_permanent with the provider's error code (e.g. 21211 invalid "To"); a connection lost after
the request was written → unknown (the provider may have queued it; Twilio has no idempotency key, so
the status callback, which carries our ``rapport_mid``, settles it).

Webhooks (status callbacks and inbound messages) carry ``X-Twilio-Signature``: base64 of HMAC-SHA1, keyed
with the auth token, over the full URL (with query string) followed by every POST parameter name and value
sorted by name, with no separators. ``verify_twilio_signature`` compares in constant time and also accepts
the URL with the default port added or removed, as Twilio's own libraries do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
    SafeResponse,
    may_have_arrived,
)
from rapport.channels.sms_keywords import Keyword, classify

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
FAILED_STATUSES = frozenset({"failed", "undelivered", "canceled"})
MESSAGE_ID_PARAM = "rapport_mid"

ParamValues = str | Sequence[str]


def is_e164(number: str) -> bool:
    """Whether ``number`` is an E.164 phone number such as ``+447700900123``."""
    return E164.fullmatch(number) is not None


def _values(value: ParamValues) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def twilio_signature(auth_token: str, url: str, params: Mapping[str, ParamValues] | None = None) -> str:
    """Return the ``X-Twilio-Signature`` Twilio would send for ``url`` and the POST ``params``."""
    pieces = [url]
    for name in sorted(params or {}):
        for value in sorted(set(_values((params or {})[name]))):
            pieces.append(name + value)
    digest = hmac.new(auth_token.encode("utf-8"), "".join(pieces).encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _port_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if default is None or not host:
        return [url]
    if parts.port is None:
        other = parts._replace(netloc=f"{parts.netloc}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])
    else:
        return [url]
    return [url, urlunsplit(other)]


def verify_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, ParamValues] | None, signature: str | None
) -> bool:
    """Whether ``signature`` is Twilio's for this URL and these POST params (constant-time compare)."""
    if not signature or not auth_token:
        return False
    given = signature.strip().encode("ascii", "replace")
    ok = False
    for candidate in _port_variants(url):
        expected = twilio_signature(auth_token, candidate, params).encode("ascii")
        ok |= hmac.compare_digest(expected, given)
    return ok


@dataclass(frozen=True, slots=True)
class SmsStatusUpdate:
    """A status callback: where a message we sent has got to."""

    provider_id: str
    status: str
    error_code: str | None
    message_id: str | None
    to: str | None

    @property
    def failed(self) -> bool:
        """Whether the provider gave up on the message."""
        return self.status in FAILED_STATUSES


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A text someone sent to one of our numbers, with its keyword class (STOP, START, HELP, reply)."""

    provider_id: str
    from_number: str
    to_number: str
    body: str
    keyword: Keyword


def _first(params: Mapping[str, ParamValues], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    values = _values(value)
    return values[0] if values else None


def parse_status_callback(params: Mapping[str, ParamValues], url: str = "") -> SmsStatusUpdate:
    """Read a Twilio status callback (form params, and our ``rapport_mid`` from the callback URL)."""
    query = dict(parse_qsl(urlsplit(url).query)) if url else {}
    return SmsStatusUpdate(
        provider_id=_first(params, "MessageSid") or _first(params, "SmsSid") or "",
        status=(_first(params, "MessageStatus") or _first(params, "SmsStatus") or "").lower(),
        error_code=_first(params, "ErrorCode") or None,
        message_id=query.get(MESSAGE_ID_PARAM),
        to=_first(params, "To"),
    )


def parse_inbound(params: Mapping[str, ParamValues]) -> InboundSms:
    """Read an inbound-message webhook and classify its body."""
    body = _first(params, "Body") or ""
    return InboundSms(
        provider_id=_first(params, "MessageSid") or _first(params, "SmsSid") or "",
        from_number=_first(params, "From") or "",
        to_number=_first(params, "To") or "",
        body=body,
        keyword=classify(body),
    )


def _with_message_id(callback: str, message_id: str) -> str:
    parts = urlsplit(callback)
    query = [*parse_qsl(parts.query), (MESSAGE_ID_PARAM, message_id)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _retry_after(response: SafeResponse) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


class TwilioSmsChannel:
    """Sends SMS through the Twilio Messages API (or any server speaking its wire format)."""

    supports_journal = True

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str = "https://api.twilio.com",
        status_callback: str | None = None,
        http: SafeHttpClient | None = None,
        name: str = "sms",
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ValueError("an SMS channel needs a from_number or a messaging_service_sid")
        self.name = name
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.base_url = base_url.rstrip("/")
        self.status_callback = status_callback
        host = urlsplit(self.base_url).hostname or ""
        self.http = http or SafeHttpClient(allowed_hosts={host}, max_response_bytes=256_000)
        self.messages_url = f"{self.base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"

    def send(self, batch: Sequence[OutboundMessage], journal: SendJournal | None = None) -> list[SendResult]:
        """Post each message to the Messages API and classify the answer."""
        notes = journal if journal is not None else NULL_JOURNAL
        return [self._send_one(message, notes) for message in batch]

    def _form(self, message: OutboundMessage) -> dict[str, str]:
        assert message.sms is not None
        form = {"To": message.to, "Body": message.sms.body}
        sender = message.sms.from_number or self.from_number
        if sender:
            form["From"] = sender
        else:
            form["MessagingServiceSid"] = self.messaging_service_sid or ""
        callback = message.sms.status_callback or self.status_callback
        if callback:
            form["StatusCallback"] = _with_message_id(callback, message.message_id)
        return form

    def _send_one(self, message: OutboundMessage, journal: SendJournal) -> SendResult:
        if message.sms is None:
            return permanent(message, "message has no SMS payload", code="no_payload")
        if not is_e164(message.to):
            return permanent(message, f"not an E.164 number: {message.to!r}", code="invalid_number")
        if not message.sms.body:
            return permanent(message, "empty SMS body", code="empty_body")
        journal.committing(message.message_id)
        try:
            response = self.http.request(
                "POST", self.messages_url, data=self._form(message), auth=(self.account_sid, self.auth_token)
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
        result = self._classify(message, response)
        if result.status is SendStatus.SENT:
            journal.accepted(message.message_id, result.provider_id)
        return result

    def _classify(self, message: OutboundMessage, response: SafeResponse) -> SendResult:
        try:
            doc = response.json()
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        code = doc.get("code") or doc.get("error_code")
        error = str(doc.get("message") or doc.get("error_message") or f"HTTP {response.status_code}")
        status = response.status_code
        if 200 <= status < 300:
            sid = doc.get("sid")
            if not sid:
                return SendResult(message.message_id, SendStatus.UNKNOWN, error="accepted without a sid")
            if str(doc.get("status", "")).lower() in FAILED_STATUSES:
                return SendResult(
                    message.message_id,
                    SendStatus.FAILED_PERMANENT,
                    provider_id=str(sid),
                    error=error,
                    error_code=None if code is None else str(code),
                )
            return SendResult(message.message_id, SendStatus.SENT, provider_id=str(sid))
        code_text = None if code is None else str(code)
        if status == 429 or status >= 500:
            return transient(message, error, code=code_text, retry_after=_retry_after(response))
        return permanent(message, error, code=code_text)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()


def form_params(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group decoded form pairs by name (the shape ``verify_twilio_signature`` accepts)."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped
