"""Turn an outbox row and its recipient into the channel's ``OutboundMessage`` (Liquid, with limits)."""

from __future__ import annotations

import gc
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rapport.channels.base import EmailPayload, OutboundMessage, PushPayload, SmsPayload, WebhookPayload
from rapport.config import Settings
from rapport.messaging import inbound, push_delivery
from rapport.messaging.repository import ClaimedMessage
from rapport.messaging.tracking import Tracker
from rapport.models import Message, Workspace
from rapport.personalize import (
    ContextInputs,
    Recipient,
    RenderFailed,
    TemplateEngine,
    build_context,
    html_to_text,
)
from rapport.personalize.context import TRIGGER_VARIABLES
from rapport.personalize.engine import STALLED, generated_text
from rapport.personalize.limits import RenderBudget, thread_cpu_seconds

#: Liquid that reads these needs the recipient's computed traits, scores or segments (read per batch).
USES_FACTS = re.compile(r"\b(?:computed|scores|segments)\b")
#: Liquid that reads this needs the recipient's nearest store (content/stores.py).
USES_STORE = re.compile(r"\bstore\b")


def own_liquid(content: Mapping[str, Any]) -> list[str]:
    """The text parts of a message that carries its own Liquid; none for a saved template's (content/
    renders those and reads what they need itself)."""
    if content.get("template_id") is not None:
        return []
    return [value for value in content.values() if isinstance(value, str)]


def liquid_uses(content: Mapping[str, Any], pattern: re.Pattern[str]) -> bool:
    """Whether any text part of a message's own Liquid (not a saved template's) matches ``pattern``."""
    return any(pattern.search(value) for value in own_liquid(content))


@dataclass(frozen=True, slots=True)
class RecipientFacts:
    """What rendering needs to know about the person: traits, where and how to format, and (read only for
    Liquid that uses them) computed traits and scores, segment names, the nearest store and the products
    the Liquid names by id."""

    profile_id: int
    address: str
    traits: dict[str, Any]
    timezone: str
    locale: str = "en_GB"
    currency: str = "GBP"
    computed: dict[str, Any] = field(default_factory=dict)
    segments: tuple[str, ...] = ()
    store: dict[str, Any] | None = None
    catalog: dict[str, Any] | None = None


def sender_defaults(settings: Settings, workspace: Workspace) -> dict[str, str]:
    """The From name/address (workspace settings, else the server's) and the SMS status callback."""
    email = (workspace.settings or {}).get("email", {})
    return {
        "from_address": str(email.get("from_address") or settings.email_from),
        "from_name": str(email.get("from_name") or workspace.name),
        "sms_status_callback": inbound.status_callback_url(settings.base_url, workspace.slug),
    }


class RenderError(Exception):
    """The message cannot be built (bad template, missing field); it is dead-lettered with the reason —
    unless ``transient`` (the render stalled on a busy worker): then it is tried again later."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    @classmethod
    def of(cls, where: str, failure: RenderFailed) -> RenderError:
        """The error for a failed render of ``where`` (a part, 'template')."""
        return cls(f"{where}: {failure.message}", transient=failure.reason == STALLED)


class _Rendering(threading.local):
    """The budget of the message this thread is rendering, and when a collection it pays for started."""

    budget: RenderBudget | None = None
    gc_started: float | None = None


_rendering = _Rendering()
_gc_hooked = False
_gc_hook_lock = threading.Lock()


def _credit_collections(phase: str, info: dict[str, Any]) -> None:
    """A garbage collection that starts in a render is the process's work, not the template's: its CPU
    time is given back to the render's budget (a full collection of a worker's heap took 230 ms of a
    200 ms budget under load in B8 and dead-lettered a good message)."""
    budget = _rendering.budget
    if budget is None:
        return
    if phase == "start":
        _rendering.gc_started = thread_cpu_seconds()
    elif _rendering.gc_started is not None:
        budget.credit(thread_cpu_seconds() - _rendering.gc_started)
        _rendering.gc_started = None


def _hook_collections() -> None:
    global _gc_hooked
    if _gc_hooked:
        return
    with _gc_hook_lock:
        if not _gc_hooked:
            gc.callbacks.append(_credit_collections)
            _gc_hooked = True


def build(
    engine: TemplateEngine,
    message: Message | ClaimedMessage,
    recipient: RecipientFacts,
    *,
    now: datetime,
    links: dict[str, str],
    defaults: dict[str, str],
    tracker: Tracker | None = None,
    prerendered: Mapping[str, str] | None = None,
) -> OutboundMessage:
    """Render ``message.content`` for ``recipient`` into the channel payload.

    ``prerendered`` holds parts already rendered for this recipient (a saved template with rule blocks and
    snippets, rendered by content/): they are used as they are, never run through Liquid again (rendered
    text is data: a second pass would execute Liquid that came from a profile).
    """
    _hook_collections()
    budget = engine.new_budget()
    _rendering.budget, _rendering.gc_started = budget, None
    try:
        return _build(engine, message, recipient, now, links, defaults, tracker, prerendered, budget)
    finally:
        _rendering.budget = None


def _build(
    engine: TemplateEngine,
    message: Message | ClaimedMessage,
    recipient: RecipientFacts,
    now: datetime,
    links: dict[str, str],
    defaults: dict[str, str],
    tracker: Tracker | None,
    prerendered: Mapping[str, str] | None,
    budget: RenderBudget,
) -> OutboundMessage:
    content = message.content or {}
    ctx = build_context(
        ContextInputs(
            now=now,
            profile=recipient.traits,
            profile_id=str(recipient.profile_id),
            recipient=Recipient(
                locale=recipient.locale,
                timezone=recipient.timezone,
                currency=recipient.currency,
                channel=message.channel,
                address=recipient.address,
            ),
            computed=recipient.computed,
            scores=recipient.computed,
            segments=recipient.segments,
            event=content.get("event"),
            campaign=content.get("campaign"),
            store=content.get("store") or recipient.store,
            catalog=recipient.catalog,
            recommendations=tuple(content.get("recommendations") or ()),
            links=links,
            extra={
                "data": content.get("data") or {},
                **{key: content[key] for key in TRIGGER_VARIABLES if content.get(key) is not None},
            },
        )
    )

    def text(key: str, *, html: bool = False, required: bool = False) -> str | None:
        if prerendered is not None:
            done = prerendered.get(key)
            if not done and required:
                raise RenderError(f"{message.channel} message has no {key}")
            return done or None
        source = content.get(key)
        if source is None or source == "":
            if required:
                raise RenderError(f"{message.channel} message has no {key}")
            return None
        try:
            return engine.render(str(source), ctx, html=html, budget=budget).text
        except RenderFailed as exc:
            raise RenderError.of(key, exc) from exc

    if message.channel == "email":
        html = text("html", html=True)
        plain = text("text")
        if html and not plain and prerendered is not None:
            plain = html_to_text(html)
        elif html and not plain:  # derived from the HTML template, as previews do (personalize/engine.py)
            try:
                plain = generated_text(engine, str(content["html"]), html, ctx, None, budget)
            except RenderFailed as exc:
                raise RenderError.of("text", exc) from exc
        if not html and not plain:
            raise RenderError("email message has neither html nor text")
        # open/click tracking (messaging/tracking.py): marketing HTML only; the text part keeps plain links
        if html and tracker is not None and message.kind == "marketing":
            html = tracker.rewrite(html, message_id=message.message_id, keep=set(links.values()))
        return OutboundMessage(
            message_id=message.message_id,
            channel="email",
            to=recipient.address,
            email=EmailPayload(
                subject=text("subject", required=True) or "",
                from_address=str(content.get("from_address") or defaults.get("from_address") or ""),
                from_name=str(content.get("from_name") or defaults.get("from_name") or ""),
                to_name=str(recipient.traits.get("first_name") or ""),
                reply_to=content.get("reply_to"),
                text=plain,
                html=html,
                unsubscribe_url=links.get("unsubscribe") if message.kind == "marketing" else None,
            ),
        )
    if message.channel == "sms":
        return OutboundMessage(
            message_id=message.message_id,
            channel="sms",
            to=recipient.address,
            sms=SmsPayload(
                body=text("body", required=True) or "",
                from_number=content.get("from_number"),
                status_callback=defaults.get("sms_status_callback"),  # messaging/inbound.py
            ),
        )
    if message.channel == "webhook":
        rendered = text("body", required=True) or "{}"
        try:
            body = json.loads(rendered)
        except json.JSONDecodeError as exc:
            raise RenderError(f"webhook body is not JSON after rendering: {exc}") from exc
        return OutboundMessage(
            message_id=message.message_id,
            channel="webhook",
            to=recipient.address,
            webhook=WebhookPayload(url=str(content.get("url") or recipient.address), body=body),
        )
    # push (messaging/push_delivery.py fans the message out to each of the profile's subscriptions)
    if message.channel == "push":
        return OutboundMessage(
            message_id=message.message_id,
            channel="push",
            to=recipient.address,
            push=PushPayload(
                title=text("title", required=True) or "",
                body=text("body") or "",
                url=text("url"),
                icon=content.get("icon"),
                subscription=push_delivery.PLACEHOLDER,
            ),
        )
    # in-app inbox (messaging/inapp.py): rendered now and kept on the row for the inbox API to show
    if message.channel == "inapp":
        shown = {key: text(key) for key in ("title", "body", "url", "image")}
        message.content = {**content, "rendered": {k: v for k, v in shown.items() if v is not None}}
        return OutboundMessage(message_id=message.message_id, channel="inapp", to=recipient.address)
    raise RenderError(f"channel {message.channel} is not deliverable through the outbox")
