"""The render context contract: what a template can read, built from plain inputs (no I/O).

``build_context(inputs)`` returns the dict passed to ``TemplateEngine.render``. Its variable names are
documented in docs/templates.md and listed in ``KNOWN_VARIABLES`` (which validation checks templates
against). A path ending in ``.*`` accepts any sub-path (traits, event properties, ...).

    ctx = build_context(ContextInputs(
        profile={"first_name": "Ada", "city": "London"}, profile_id="p1",
        recipient=Recipient(locale="en_GB", timezone="Europe/London"),
        now=clock.now(), links={"unsubscribe": "https://…/u/TOKEN"},
    ))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PRODUCT_FIELDS = ("id", "name", "category", "price", "currency", "url", "image", "stock")
STORE_FIELDS = (
    "id",
    "name",
    "address",
    "city",
    "postcode",
    "phone",
    "url",
    "latitude",
    "longitude",
    "distance_km",
    "opens_at",
    "closes_at",
)
#: Keys a queued message's content may carry (written by campaigns/ when it was queued) that are top-level
#: variables of its render: ``segment.*`` for a segment trigger, ``occasion.*`` for a date trigger.
TRIGGER_VARIABLES = ("segment", "occasion")
# Traits copied to the top level as shortcuts: ``{{ first_name | default: "there" }}``.
SHORTCUT_TRAITS = ("first_name", "last_name", "email", "phone")

KNOWN_VARIABLES: tuple[str, ...] = (
    *SHORTCUT_TRAITS,
    "profile.id",
    "profile.*",
    "computed.*",
    "scores.*",
    "segments",
    "event.name",
    "event.timestamp",
    "event.properties.*",
    "segment.id",
    "segment.name",
    "segment.change",
    "occasion.trait",
    "occasion.date",
    "occasion.day",
    "campaign.id",
    "campaign.name",
    "campaign.channel",
    "campaign.variant",
    "unsubscribe_url",
    "preferences_url",
    "view_online_url",
    "recipient.locale",
    "recipient.timezone",
    "recipient.currency",
    "recipient.channel",
    "recipient.address",
    "now",
    "today",
    "local_hour",
    "time_of_day",
    *(f"store.{name}" for name in STORE_FIELDS),
    "store.opening_hours.*",
    "catalog.*",
    "blocks.*",
    "recommendations",
    *(f"recommendations.first.{name}" for name in PRODUCT_FIELDS),
    *(f"recommendations.last.{name}" for name in PRODUCT_FIELDS),
)


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who the message goes to, for formatting: locale (en_GB), IANA timezone, currency, channel."""

    locale: str = "en_GB"
    timezone: str = "UTC"
    currency: str = "GBP"
    channel: str = "email"
    address: str | None = None


@dataclass(frozen=True, slots=True)
class ContextInputs:
    """Everything a render may use; plain mappings or dataclasses, read-only."""

    now: datetime
    profile: Mapping[str, Any] = field(default_factory=dict)
    profile_id: str | None = None
    recipient: Recipient = field(default_factory=Recipient)
    computed: Mapping[str, Any] = field(default_factory=dict)
    scores: Mapping[str, Any] = field(default_factory=dict)
    segments: Sequence[str] = ()
    event: Mapping[str, Any] | None = None
    campaign: Mapping[str, Any] | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    store: Mapping[str, Any] | Any | None = None
    catalog: Mapping[str, Any] | None = None
    recommendations: Sequence[Any] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def plain(value: Any) -> Any:
    """Return a dataclass instance as a dict (Liquid reads only mappings and sequences); else ``value``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return value


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def time_of_day(hour: int) -> str:
    """Name the part of the day for a local hour: morning (5-11), afternoon (12-16), evening (17-21), night."""
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


def build_context(inputs: ContextInputs) -> dict[str, Any]:
    """Build the render context dict from ``inputs``; see docs/templates.md for every variable."""
    recipient = inputs.recipient
    zone = _zone(recipient.timezone)
    now_utc = inputs.now if inputs.now.tzinfo is not None else inputs.now.replace(tzinfo=UTC)
    local_now = now_utc.astimezone(zone or UTC)
    profile = dict(inputs.profile)
    if inputs.profile_id is not None:
        profile["id"] = inputs.profile_id
    context: dict[str, Any] = {
        "profile": profile,
        "computed": inputs.computed,
        "scores": inputs.scores,
        "segments": list(inputs.segments),
        "recipient": {
            "locale": recipient.locale,
            "timezone": recipient.timezone if zone is not None else "UTC",
            "currency": recipient.currency,
            "channel": recipient.channel,
            "address": recipient.address,
        },
        "now": local_now,
        "today": local_now.date(),
        "local_hour": local_now.hour,
        "time_of_day": time_of_day(local_now.hour),
        "recommendations": [plain(item) for item in inputs.recommendations],
    }
    for name in SHORTCUT_TRAITS:
        if name in profile:
            context[name] = profile[name]
    if inputs.event is not None:
        event = plain(inputs.event)
        context["event"] = {
            "name": event.get("name"),
            "timestamp": event.get("timestamp"),
            "properties": event.get("properties") or {},
        }
    if inputs.campaign is not None:
        context["campaign"] = plain(inputs.campaign)
    for link, variable in (
        ("unsubscribe", "unsubscribe_url"),
        ("preferences", "preferences_url"),
        ("view_online", "view_online_url"),
    ):
        if link in inputs.links:
            context[variable] = inputs.links[link]
    if inputs.store is not None:
        context["store"] = plain(inputs.store)
    if inputs.catalog is not None:
        context["catalog"] = inputs.catalog
    for key, value in inputs.extra.items():
        context.setdefault(key, value)
    return context


def known_variable_paths(
    *,
    traits: Iterable[str] | None = None,
    computed: Iterable[str] | None = None,
    event_properties: Iterable[str] | None = None,
) -> list[str]:
    """Return ``KNOWN_VARIABLES``, narrowing ``profile.*``, ``computed.*`` or ``event.properties.*``
    to the names given (so a misspelt trait is warned about)."""
    narrowed = {
        "profile.*": (traits, "profile"),
        "computed.*": (computed, "computed"),
        "event.properties.*": (event_properties, "event.properties"),
    }
    paths: list[str] = []
    for path in KNOWN_VARIABLES:
        names, prefix = narrowed.get(path, (None, ""))
        if names is None:
            paths.append(path)
        else:
            paths.extend(f"{prefix}.{name}" for name in names)
    return paths
