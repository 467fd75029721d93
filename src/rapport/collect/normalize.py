"""Validate and normalise one Segment-spec message into an ``events`` row, or say exactly what is wrong.

Pure: no session, no clock (``received_at`` is passed in), no I/O. The rules are written down for users in
docs/tracking-api.md; the short version:

* ``type`` is one of identify, track, page, screen, group, alias (the route gives it for single calls);
* ``userId`` or ``anonymousId`` is required (alias: ``userId`` and ``previousId``; group: ``groupId``;
  track: ``event``); ids may be strings or numbers, numbers are kept as their decimal string;
* ``properties``, ``traits`` and ``context`` are objects; a few context fields have types (ip, locale,
  timezone, userAgent, channel are strings; location latitude/longitude are numbers in range);
* ``messageId`` is generated when missing (``api-<uuid>``) as Segment does, so retries of a message without
  one cannot be deduplicated;
* clock skew: ``timestamp = receivedAt - (sentAt - originalTimestamp)`` when the client sent ``sentAt``
  (``originalTimestamp`` defaults to the message's ``timestamp``); without ``sentAt`` the client's
  ``timestamp`` is trusted as is (server libraries and historical imports); without either it is
  ``receivedAt``;
* an event is at most 32 KB (32,768 bytes of JSON, boundary included);
* unknown top-level fields are kept in ``extra``; the ``writeKey`` never is.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from rapport.collect import codec
from rapport.kit import fastjson
from rapport.models.event import PENDING

EVENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")
_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
#: 32 KB per event, inclusive: an event of exactly 32,768 bytes is accepted, 32,769 is not.
MAX_EVENT_BYTES = 32 * 1024
#: 500 KB per batch request (512,000 bytes, inclusive).
MAX_BATCH_BYTES = 500 * 1024
#: Column widths of the events table; longer values are refused here rather than failing the commit.
MAX_MESSAGE_ID = 200
MAX_EVENT_NAME = 200
MAX_ID = 400

CHANNELS = ("web", "app", "store", "email", "sms", "server")
_CHANNEL_SYNONYMS = {
    "web": "web",
    "browser": "web",
    "website": "web",
    "app": "app",
    "mobile": "app",
    "ios": "app",
    "android": "app",
    "push": "app",
    "store": "store",
    "pos": "store",
    "instore": "store",
    "in-store": "store",
    "in_store": "store",
    "offline": "store",
    "retail": "store",
    "email": "email",
    "mail": "email",
    "sms": "sms",
    "text": "sms",
    "server": "server",
    "backend": "server",
    "api": "server",
}
_MOBILE_LIBRARIES = ("ios", "android", "react-native", "flutter", "kotlin", "swift", "xamarin", "mobile")
_WEB_LIBRARIES = ("analytics.js", "analytics-next", "rudder-js", "rudderanalytics.js", "javascript")

#: Top-level fields that map to columns (or must never be stored); everything else goes to ``extra``.
_COLUMN_FIELDS = frozenset(
    {
        "type",
        "messageId",
        "event",
        "userId",
        "anonymousId",
        "properties",
        "traits",
        "context",
        "timestamp",
        "sentAt",
        "originalTimestamp",
        "receivedAt",
        "writeKey",
    }
)
_STRING_CONTEXT_FIELDS = frozenset({"ip", "locale", "timezone", "userAgent"})
_OBJECT_CONTEXT_FIELDS = frozenset(
    {
        "app",
        "campaign",
        "device",
        "library",
        "location",
        "network",
        "os",
        "page",
        "referrer",
        "screen",
        "traits",
        "consent",
    }
)

#: The type each typed context field must have (one lookup a field on the hot path).
_CONTEXT_KINDS: dict[str, type] = {
    **dict.fromkeys(_STRING_CONTEXT_FIELDS, str),
    **dict.fromkeys(_OBJECT_CONTEXT_FIELDS, dict),
}

# Consent signals (R16). Keys are compared lower-cased with "_" and "-" removed.
_GRANT_WORDS = frozenset(
    {"true", "yes", "granted", "grant", "subscribed", "optedin", "optin", "accepted", "allow", "allowed"}
)
_WITHDRAW_WORDS = frozenset(
    {
        "false",
        "no",
        "denied",
        "withdrawn",
        "unsubscribed",
        "optedout",
        "optout",
        "revoked",
        "rejected",
        "declined",
    }
)
_CONSENT_SOURCES = ("traits", "context.traits", "properties")


@dataclass(frozen=True, slots=True)
class FieldError:
    """What is wrong with one field of a message."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """Render for the API's ``details``."""
        return {"field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ConsentSignal:
    """One consent statement found in a message: where, about what, and whether it grants or withdraws."""

    path: str
    subject: str
    grants: bool
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        """Render for ``Event.extra`` and audit details."""
        return {"path": self.path, "subject": self.subject, "value": self.value}


class Normalized(NamedTuple):
    """A valid message: the ``events`` row (without ``workspace_id``) and the consent grants refused.

    A named tuple, not a frozen dataclass: one is built per accepted event on the ingest hot path, and a
    frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (4x the cost)."""

    row: dict[str, Any]
    refused_grants: tuple[ConsentSignal, ...] = ()

    @property
    def message_id(self) -> str:
        """Return the message id (given or generated)."""
        return str(self.row["message_id"])


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid message: a one-line reason and the field-level errors."""

    message_id: str | None
    errors: tuple[FieldError, ...]
    code: str = "validation_failed"

    @property
    def reason(self) -> str:
        """Return the first error as one line, e.g. ``userId: userId or anonymousId is required``."""
        first = self.errors[0]
        return f"{first.field}: {first.reason}" if first.field else first.reason


@dataclass(frozen=True, slots=True)
class Envelope:
    """Defaults a batch request gives its messages: ``sentAt`` and a shared ``context``."""

    sent_at: Any = None
    context: Mapping[str, Any] | None = None


class _Errors:
    # A plain class: built once per message on the hot path, where a dataclass factory costs more.
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, name: str, reason: str) -> None:
        self.items.append(FieldError(name, reason))

    def named(self) -> set[str]:
        return {e.field for e in self.items}


class InvalidJson(ValueError):
    """The body is not JSON Rapport can store (syntax, NaN/Infinity, nesting too deep)."""


def _refuse_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJson(f"{text[:40]} is out of range for a JSON number")
    return value


def parse_json(data: bytes) -> Any:
    """Parse a request body; refuses NaN/Infinity (PostgreSQL cannot store them) and absurd nesting."""
    return parse_json_fast(data)[0]


def parse_json_fast(data: bytes) -> tuple[Any, bool]:
    """Parse like ``parse_json``; also tell whether orjson parsed it (see ``codec``: then every string
    is valid Unicode and every number finite, so the values are storable and measurable with orjson)."""
    done, value = fastjson.fast_loads(data)
    if done:
        return value, True
    try:
        text = data.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float), False
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidJson("JSON nesting is too deep") from None
    except ValueError as exc:  # e.g. an integer longer than Python's 4,300-digit conversion limit
        raise InvalidJson(str(exc).split(";")[0]) from None


def encoded_size(message: Any) -> int:
    """Return the size in bytes of ``message`` as compact UTF-8 JSON (how batch items are measured)."""
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def storable_size(value: Any) -> tuple[int | None, str | None]:
    """Return (compact UTF-8 JSON size, None), or (None, why) when a database could not store ``value``."""
    try:
        encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(
            "utf-8"
        )
    except UnicodeEncodeError:
        return None, "contains invalid Unicode (an unpaired surrogate escape)"
    except RecursionError:
        return None, "cannot be stored as JSON (nesting too deep)"
    except ValueError:
        return None, "contains a number JSON cannot hold (NaN or Infinity)"
    if b"\\u0000" in encoded and _has_nul(value):
        return None, "contains a NUL character (\\u0000), which cannot be stored"
    return len(encoded), None


def _storable(message: Mapping[str, Any], errors: _Errors) -> int | None:
    """Check the message can be stored on both databases; return its compact size."""
    size, problem = storable_size(message)
    if problem:
        errors.add("", problem)
    return size


def parse_time(value: Any) -> datetime:
    """Parse an ISO-8601 timestamp; naive values are UTC. Raises ValueError with a short reason."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 string")
    text = value.strip()
    if not text:
        raise ValueError("must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not an ISO-8601 timestamp") from None
    zone = parsed.tzinfo
    if zone is UTC:  # "Z" (what the SDKs send) parses to datetime.UTC itself: nothing to convert
        return parsed
    if zone is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


def _id(message: Mapping[str, Any], name: str, errors: _Errors, *, limit: int = MAX_ID) -> str | None:
    value = message.get(name)
    if value is None:
        return None
    if value.__class__ is str:  # the common case first
        text = value.strip()
        if len(text) > limit:
            errors.add(name, f"is longer than {limit} characters")
            return None
        return text or None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors.add(name, "must be a string or a number")
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            errors.add(name, "must be a string or a number")
            return None
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        text = str(value)
    text = text.strip()
    if len(text) > limit:
        errors.add(name, f"is longer than {limit} characters")
        return None
    return text or None


def _object(container: Mapping[str, Any], name: str, errors: _Errors, *, prefix: str = "") -> dict[str, Any]:
    value = container.get(name)
    if value.__class__ is dict:
        return value
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(prefix + name, "must be an object")
        return {}
    return value


def _check_context(context: Mapping[str, Any], errors: _Errors) -> None:
    kinds = _CONTEXT_KINDS
    for name, value in context.items():  # contexts are small; walk them rather than probe every field
        kind = kinds.get(name)
        if kind is None or value is None or value.__class__ is kind or isinstance(value, kind):
            continue
        errors.add(f"context.{name}", "must be a string" if kind is str else "must be an object")
    location = context.get("location")
    if location and isinstance(location, dict):
        for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
            value = location.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors.add(f"context.location.{name}", "must be a number")
            elif not -bound <= value <= bound:
                errors.add(f"context.location.{name}", f"must be between -{bound:g} and {bound:g}")


def _time_field(message: Mapping[str, Any], name: str, errors: _Errors) -> datetime | None:
    value = message.get(name)
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        errors.add(name, str(exc))
        return None


def _channel_word(value: Any) -> str | None:
    if isinstance(value, str):
        found = _CHANNEL_SYNONYMS.get(value)  # already a canonical word: most senders write one
        return found if found is not None else _CHANNEL_SYNONYMS.get(value.strip().lower())
    return None


def infer_channel(
    message: Mapping[str, Any], context: Mapping[str, Any], properties: Mapping[str, Any]
) -> str:
    """Return the touchpoint channel: web, app, store, email, sms or server.

    Explicit first (``context.channel``, top-level ``channel`` as RudderStack sends it, ``context.source``,
    ``properties.channel``), then inferred: an app or device context → app; a page or user agent → web;
    the SDK library's name (mobile → app, analytics.js → web); otherwise server.
    """
    found = _channel_word(context.get("channel"))  # the usual place: the other three only when it is not
    if found:
        return found
    for value in (message.get("channel"), context.get("source"), properties.get("channel")):
        found = _channel_word(value)
        if found:
            return found
    if context.get("app") or context.get("device"):
        return "app"
    if context.get("page") or context.get("userAgent"):
        return "web"
    library = context.get("library")
    if isinstance(library, dict) and isinstance(library.get("name"), str):
        name = library["name"].lower()
        if any(tag in name for tag in _MOBILE_LIBRARIES):
            return "app"
        if any(tag in name for tag in _WEB_LIBRARIES):
            return "web"
    return "server"


def _consent_value(value: Any) -> bool | None:
    """True for a grant, False for a withdrawal, None when the value says neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
        if word in _GRANT_WORDS:
            return True
        if word in _WITHDRAW_WORDS:
            return False
    return None


def _flag_subject(key: str) -> tuple[str, bool] | None:
    """Map a flag trait name to (subject, inverted) — ``email_opt_in`` → ("email", False)."""
    word = key.lower()
    if "opt" not in word and "subscri" not in word and "marketing" not in word:
        return None
    word = word.replace("_", "").replace("-", "")
    for suffix, inverted in (
        ("unsubscribed", True),
        ("optout", True),
        ("optin", False),
        ("subscribed", False),
    ):
        if word.endswith(suffix):
            return word[: -len(suffix)] or "all", inverted
    if word in {"acceptsmarketing", "marketingconsent"}:
        return "marketing", False
    return None


def _scan_map(path: str, values: Mapping[str, Any], found: list[ConsentSignal]) -> dict[str, Any] | None:
    """Record the consent statements of a {subject: value} map; return it without its grants (None: as is)."""
    kept: dict[str, Any] = {}
    changed = False
    for subject, value in values.items():
        if subject == "categoryPreferences" and isinstance(value, dict):
            inner = _scan_map(f"{path}.{subject}", value, found)
            kept[subject] = value if inner is None else inner
            changed = changed or inner is not None
            continue
        verdict = _consent_value(value)
        if isinstance(value, dict):
            verdict = _consent_value(value.get("status", value.get("subscribed", value.get("state"))))
        if verdict is None:
            kept[subject] = value
            continue
        found.append(ConsentSignal(f"{path}.{subject}", str(subject), verdict, value))
        if verdict:
            changed = True
        else:
            kept[subject] = value
    return kept if changed else None


def _scan_list(path: str, values: list[Any], found: list[ConsentSignal]) -> list[Any] | None:
    kept: list[Any] = []
    changed = False
    for i, item in enumerate(values):
        if not isinstance(item, dict):
            kept.append(item)
            continue
        subject = next(
            (
                str(item[k])
                for k in ("channel", "topic", "name", "id", "type")
                if isinstance(item.get(k), str)
            ),
            "all",
        )
        verdict = _consent_value(item.get("status", item.get("subscribed", item.get("state"))))
        if verdict is None:
            kept.append(item)
            continue
        found.append(ConsentSignal(f"{path}[{i}]", subject, verdict, item))
        if verdict:
            changed = True
        else:
            kept.append(item)
    return kept if changed else None


def scan_consent(path: str, container: Mapping[str, Any], found: list[ConsentSignal]) -> dict[str, Any]:
    """Record the consent statements of one traits/properties object; return it with grants removed.

    The result is ``container`` itself when nothing was removed. Recognised shapes (docs/tracking-api.md): flags such as ``email_opt_in``, ``smsOptIn``, ``opt_in``,
    ``subscribed``, ``accepts_marketing`` (and the inverse ``unsubscribed``, ``*_opt_out``); a
    ``subscriptions`` object ``{subject: bool|status}`` or list ``[{channel|topic, status|subscribed}]``;
    a ``consent`` object ``{purpose: bool|status}`` including Segment's ``categoryPreferences``.
    """
    out: dict[str, Any] | None = None  # a copy, made at the first change
    kinds = _KEY_KINDS
    for key, value in container.items():
        kind = kinds.get(key, _UNSEEN)
        if kind is _UNSEEN:
            kind = _classify_key(key)
        if kind is None:
            continue
        if kind is _CONTAINER:
            replaced: Any = None
            if isinstance(value, dict):
                replaced = _scan_map(f"{path}.{key}", value, found)
            elif isinstance(value, list):
                replaced = _scan_list(f"{path}.{key}", value, found)
            if replaced is not None:
                out = dict(container) if out is None else out
                out[key] = replaced
            continue
        verdict = _consent_value(value)
        if verdict is None:
            continue
        name, inverted = kind
        grants = verdict != inverted
        found.append(ConsentSignal(f"{path}.{key}", name, grants, value))
        if grants:
            out = dict(container) if out is None else out
            del out[key]
    if out is not None:
        return out
    return container if isinstance(container, dict) else dict(container)


_CONTAINER = ("", False)
_UNSEEN = ("?", False)


#: The keys classified so far: a plain dict that ``scan_consent`` reads (a lookup costs half of an
#: ``lru_cache`` call), emptied when full.
_KEY_KINDS: dict[str, tuple[str, bool] | None] = {}
_KEY_KINDS_MAX = 8192


def _classify_key(key: str) -> tuple[str, bool] | None:
    """Classify a key not in ``_KEY_KINDS`` and remember it: a consent container (``_CONTAINER``), a flag
    (subject, inverted) or neither."""
    kind = _CONTAINER if key.lower() in {"subscriptions", "consent"} else _flag_subject(key)
    if len(_KEY_KINDS) >= _KEY_KINDS_MAX:
        _KEY_KINDS.clear()
    _KEY_KINDS[key] = kind
    return kind


def _contact_trait(message: Mapping[str, Any], kind: str | None) -> bool:
    """Tell whether an imported message names its person by an email or phone trait instead of an id.

    A file from a till or an email tool knows its customers by email, not by the website's user id; the
    identity resolution finds (or creates) the profile by that trait (``traits`` of an identify,
    ``context.traits`` otherwise), as it does for any call. The tracking API keeps Segment's rule."""
    context = message.get("context")
    bags = [context.get("traits") if isinstance(context, Mapping) else None]
    if kind == "identify":
        bags.append(message.get("traits"))
    return any(
        isinstance(bag, Mapping) and isinstance(bag.get(key), str) and bag[key].strip()
        for bag in bags
        for key in ("email", "phone")
    )


def normalize(
    message: Any,
    *,
    received_at: datetime,
    route_type: str | None = None,
    envelope: Envelope | None = None,
    raw_size: int | None = None,
    may_grant_consent: bool = False,
    source: str = "api",
    prechecked: bool = False,
    fast_json: bool = False,
) -> Normalized | Rejected:
    """Validate one message and return its ``events`` row (minus ``workspace_id``) or the reasons it fails.

    ``route_type`` is the type a single-event route implies (``/v1/track`` → track); batch items carry
    their own. ``raw_size`` is the body size as received for single calls; batch items are measured as
    compact JSON. Consent grants are removed (and returned in ``refused_grants``) unless
    ``may_grant_consent`` (a secret key with ``consent:write``); withdrawals are always kept as intent.
    ``prechecked``: the caller knows the message is within 32 KB and its raw JSON has no ``\\u`` escape
    (so no NUL or unpaired surrogate), which skips re-serialising it. ``fast_json``: the message came
    from ``parse_json_fast`` with orjson, from a body without ``\\u0000``: it is storable, only its size is
    measured (with orjson).
    """
    if not isinstance(message, dict):
        return Rejected(None, (FieldError("", "each message must be a JSON object"),))
    errors = _Errors()
    message_id = _id(message, "messageId", errors, limit=MAX_MESSAGE_ID)
    size = 0 if prechecked else codec.compact_size(message) if fast_json else _storable(message, errors)
    if size is None:
        return Rejected(None, tuple(errors.items))
    if errors.items:
        return Rejected(message_id, tuple(errors.items))
    limit_size = raw_size if raw_size is not None else size
    if limit_size > MAX_EVENT_BYTES:
        return Rejected(
            message_id,
            (FieldError("", f"event is {limit_size:,} bytes; the limit is {MAX_EVENT_BYTES:,} bytes"),),
            code="event_too_large",
        )

    given_type = message.get("type")
    kind = route_type
    if kind is None:
        # as the SDKs send it (a str first: looking an object or array up in a set would raise)
        if given_type.__class__ is str and given_type in _EVENT_TYPE_SET:
            kind = given_type
        elif given_type is None:
            errors.add("type", f"is required: one of {', '.join(EVENT_TYPES)}")
        elif not isinstance(given_type, str) or given_type.strip().lower() not in EVENT_TYPES:
            errors.add("type", f"must be one of {', '.join(EVENT_TYPES)}")
        else:
            kind = given_type.strip().lower()

    user_id = _id(message, "userId", errors)
    anonymous_id = _id(message, "anonymousId", errors)
    properties = _object(message, "properties", errors)
    traits = _object(message, "traits", errors)
    context = _object(message, "context", errors)
    if envelope is not None and envelope.context:
        context = {**envelope.context, **context}
    _check_context(context, errors)

    event_name: str | None = None
    extra: dict[str, Any] = {}
    linked: dict[str, str] = {}
    if kind == "track":
        raw = message.get("event")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            errors.add("event", "is required for track calls")
        elif not isinstance(raw, str):
            errors.add("event", "must be a string")
        elif len(raw) > MAX_EVENT_NAME:
            errors.add("event", f"is longer than {MAX_EVENT_NAME} characters")
        else:
            event_name = raw.strip()
    elif kind in {"page", "screen"}:
        raw = message.get("name")
        if raw is not None and not isinstance(raw, str):
            errors.add("name", "must be a string")
        elif isinstance(raw, str) and len(raw) > MAX_EVENT_NAME:
            errors.add("name", f"is longer than {MAX_EVENT_NAME} characters")
        elif isinstance(raw, str) and raw.strip():
            event_name = raw.strip()
    elif kind == "group":
        group_id = _id(message, "groupId", errors)
        if group_id is not None:
            linked["groupId"] = group_id
        if group_id is None and "groupId" not in errors.named():
            errors.add("groupId", "is required for group calls")
    elif kind == "alias":
        previous_id = _id(message, "previousId", errors)
        if previous_id is not None:
            linked["previousId"] = previous_id
        if previous_id is None and "previousId" not in errors.named():
            errors.add("previousId", "is required for alias calls")
        if user_id is None and "userId" not in errors.named():
            errors.add("userId", "is required for alias calls")
    if (
        kind != "alias"
        and user_id is None
        and anonymous_id is None
        and not ({"userId", "anonymousId"} & errors.named())
    ):
        if source != "import":
            errors.add("userId", "userId or anonymousId is required")
        elif not _contact_trait(message, kind):
            errors.add("userId", "userId, anonymousId, or an email or phone trait is required")

    # the absent fields (most are) cost one lookup each, not a call
    get = message.get
    sent_at = None if get("sentAt") is None else _time_field(message, "sentAt", errors)
    if sent_at is None and envelope is not None and envelope.sent_at is not None and "sentAt" not in message:
        try:
            sent_at = parse_time(envelope.sent_at)
        except ValueError as exc:
            errors.add("sentAt", str(exc))
    original = None if get("originalTimestamp") is None else _time_field(message, "originalTimestamp", errors)
    client_timestamp = None if get("timestamp") is None else _time_field(message, "timestamp", errors)
    if errors.items:
        return Rejected(message_id, tuple(errors.items))

    client_time = original or client_timestamp
    try:
        if sent_at is not None and client_time is not None:
            timestamp = received_at - (sent_at - client_time)
        else:
            timestamp = client_time or received_at
    except OverflowError:
        return Rejected(message_id, (FieldError("timestamp", "is out of range once corrected with sentAt"),))
    assert kind is not None  # every path without a kind added an error above

    found: list[ConsentSignal] = []
    clean_traits = scan_consent("traits", traits, found) if traits else traits
    clean_properties = scan_consent("properties", properties, found) if properties else properties
    clean_context = context
    for name in ("traits", "consent"):
        inner = context.get(name)
        if isinstance(inner, dict):
            path = "context.traits" if name == "traits" else "context"
            scanned = scan_consent(path, inner if name == "traits" else {"consent": inner}, found)
            clean_context = {**clean_context, name: scanned if name == "traits" else scanned["consent"]}
    grants = tuple(s for s in found if s.grants) if found else ()
    withdrawals = [s for s in found if not s.grants] if found else []
    refused: tuple[ConsentSignal, ...] = ()
    if grants and not may_grant_consent:
        refused = grants
        traits, properties, context = clean_traits, clean_properties, clean_context
        extra["_consent_grant_refused"] = True
        extra["_consent_refused"] = [s.as_dict() for s in grants]
    elif grants:
        extra["_consent_grants"] = [s.as_dict() for s in grants]
    if withdrawals:
        extra["_consent_withdrawals"] = [s.as_dict() for s in withdrawals]

    if not message.keys() <= _COLUMN_FIELDS:  # a subset test in C: most messages have nothing else
        for key, value in message.items():
            if key not in _COLUMN_FIELDS and not (kind in {"page", "screen"} and key == "name"):
                extra[key] = value
    extra.update(linked)
    if original is not None:
        extra["originalTimestamp"] = original.isoformat()
    elif client_timestamp is not None and sent_at is not None:
        extra["originalTimestamp"] = client_timestamp.isoformat()
    if "receivedAt" in message:
        extra["clientReceivedAt"] = message["receivedAt"]

    if kind not in {"identify", "group"} and traits:
        extra["traits"] = traits
    row = {
        "message_id": message_id or f"api-{uuid.uuid4()}",
        "type": kind,
        "event": event_name,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "profile_id": None,
        "channel": infer_channel(message, context, properties),
        "timestamp": timestamp,
        "received_at": received_at,
        "sent_at": sent_at,
        "properties": properties,
        "traits": traits if kind in {"identify", "group"} else {},
        "context": context,
        "extra": extra,
        "source": source,
        "state": PENDING,
    }
    return Normalized(row, refused)
