"""Provider webhooks: inbound SMS and status callbacks (Twilio), email bounces and complaints (signed JSON).

**Twilio** (``POST /webhooks/twilio/{workspace_slug}/sms`` and ``…/status``): the ``X-Twilio-Signature``
is checked over ``settings.base_url`` + path + query and the form parameters with the workspace's auth
token (``{"sms": {"auth_token"}}``, else ``settings.twilio_auth_token``); a forged or missing one is a 403
(R21). Each webhook is applied once: a ``webhook_receipts`` row keyed by the provider id (the inbound
``MessageSid``, or ``MessageSid:status`` for callbacks) is written in the same transaction as its effect,
so the same webhook 50 times changes one thing. Inbound texts are matched to a profile by E.164 phone and
classified (``channels.sms_keywords``, R13):

- STOP and friends → SMS consent withdrawn (source ``sms_keyword``) and, only when that changed the state,
  one confirmation text queued in the outbox (``kind=confirmation``);
- START/UNSTOP → SMS consent granted again, with one confirmation;
- HELP → the workspace's ``sms.help_text`` queued as the answer;
- anything else → an ``sms_replied`` event with the body on the timeline (``in_reply_to`` names our last
  SMS to that person).

Keyword answers carry ``content["keyword_answer"]``; the Deliverer lets them through the consent check
(``is_keyword_answer``), since the person has just said STOP. Status callbacks: ``delivered`` → the
message's ``delivered_at`` and ``sms_delivered``; ``sent`` settles an ``unknown`` row as sent (R8);
``failed``/``undelivered`` → ``dead`` with the provider's reason and ``sms_failed``.

**Email feedback** (``POST /webhooks/email/{workspace_slug}``): JSON ``{"type": "bounce"|"complaint",
"email", "message_id", "id"?, "bounce_type"?}`` signed like our own outgoing webhooks
(``X-Rapport-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")``, five minutes' tolerance) with the workspace's
``email.feedback_secret``. A complaint suppresses the address at once, withdraws email consent (R18) and
writes ``email_complained``; when a campaign's complaints exceed 0.3 % of its sent messages, its id joins
the workspace setting ``paused_campaigns`` and the Deliverer leaves its rows queued (``campaign_paused``).
A bounce (``bounce_type`` ``hard``, the default, or ``soft``) writes ``email_bounced``; a hard one also
suppresses the address.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.channels import sms as sms_channel
from rapport.channels import webhook as webhook_channel
from rapport.channels.sms_keywords import Keyword
from rapport.collect import identity as ident
from rapport.consent import rules as consent_rules
from rapport.consent import service as consent_service
from rapport.errors import Forbidden, ValidationFailed
from rapport.messaging import feedback
from rapport.messaging import repository as repo
from rapport.messaging import service as messaging_service
from rapport.models import Event, Identity, Message, Profile, WebhookReceipt, Workspace
from rapport.models.event import PROCESSED
from rapport.profiles import gdpr as profiles_gdpr
from rapport.runtime import Runtime

log = logging.getLogger("rapport.messaging.inbound")

COMPLAINT_RATE_LIMIT = 0.003
PAUSED_CAMPAIGNS = "paused_campaigns"
PAUSE_RECHECK = timedelta(minutes=15)
KEYWORD_SOURCE = "sms_keyword"
DEFAULT_STOP_TEXT = "You are unsubscribed and will get no more texts from us. Reply START to resubscribe."
DEFAULT_START_TEXT = "You are subscribed again. Reply STOP to unsubscribe, HELP for help."
DEFAULT_HELP_TEXT = "Reply STOP to unsubscribe."
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_BODY = 64_000


# -- what the Deliverer asks ------------------------------------------------------------------------------


def is_keyword_answer(message: Message | repo.ClaimedMessage) -> bool:
    """Whether ``message`` is the confirmation/help text answering an inbound STOP, START or HELP."""
    return (
        message.channel == "sms"
        and message.kind == "confirmation"
        and (message.content or {}).get("keyword_answer") in {"opt_out", "opt_in", "help"}
    )


def campaign_paused(workspace: Workspace, campaign_id: int | None) -> bool:
    """Whether a campaign was paused by its complaint rate (workspace setting ``paused_campaigns``)."""
    if campaign_id is None:
        return False
    paused = (workspace.settings or {}).get(PAUSED_CAMPAIGNS) or []
    return isinstance(paused, list) and campaign_id in paused


# -- shared helpers ---------------------------------------------------------------------------------------


def _insert(db: Session) -> Any:
    return postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert


def first_receipt(db: Session, *, workspace_id: int, provider: str, receipt_id: str, now: datetime) -> bool:
    """Record a webhook as applied; False when it was applied before (the caller then changes nothing)."""
    stmt = (
        _insert(db)(WebhookReceipt)
        .values(workspace_id=workspace_id, provider=provider, receipt_id=receipt_id[:200], created_at=now)
        .on_conflict_do_nothing(index_elements=["provider", "receipt_id"])
        .returning(WebhookReceipt.id)
    )
    return db.execute(stmt).scalar_one_or_none() is not None


def _workspace(db: Session, slug: str) -> Workspace | None:
    return db.scalar(select(Workspace).where(Workspace.slug == slug))


def _setting(workspace: Workspace, section: str, key: str) -> Any:
    block = (workspace.settings or {}).get(section) or {}
    return block.get(key) if isinstance(block, dict) else None


def _live(db: Session, profile_id: int | None) -> Profile | None:
    profile = db.get(Profile, profile_id) if profile_id is not None else None
    hops = 0
    while profile is not None and profile.merged_into_id is not None and hops < 10:
        profile = db.get(Profile, profile.merged_into_id)
        hops += 1
    return profile


def _by_identity(db: Session, workspace_id: int, kind: str, value: str) -> Profile | None:
    return _live(
        db,
        db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == workspace_id, Identity.kind == kind, Identity.value == value
            )
        ),
    )


def timeline_event(
    db: Session,
    *,
    workspace_id: int,
    profile_id: int,
    name: str,
    event_id: str,
    channel: str,
    properties: Mapping[str, Any],
    now: datetime,
) -> None:
    """Append one event to a profile's timeline (deduplicated by ``event_id``)."""
    values = {
        "workspace_id": workspace_id,
        "message_id": event_id[:200],
        "type": "track",
        "event": name,
        "profile_id": profile_id,
        "channel": channel,
        "timestamp": now,
        "received_at": now,
        "properties": {k: v for k, v in properties.items() if v is not None},
        "traits": {},
        "context": {},
        "extra": {},
        "source": "rapport",
        "state": PROCESSED,
    }
    db.execute(
        _insert(db)(Event)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["workspace_id", "message_id"])
    )


# -- Twilio: inbound texts --------------------------------------------------------------------------------


def _twilio_token(runtime: Runtime, workspace: Workspace) -> str:
    return str(_setting(workspace, "sms", "auth_token") or runtime.settings.twilio_auth_token or "")


def _verified_workspace(
    db: Session, runtime: Runtime, slug: str, url: str, params: Mapping[str, list[str]], signature: str | None
) -> Workspace:
    workspace = _workspace(db, slug)
    token = _twilio_token(runtime, workspace) if workspace is not None else ""
    if workspace is None or not sms_channel.verify_twilio_signature(token, url, params, signature):
        raise Forbidden("the webhook signature is not valid", code="bad_signature")
    return workspace


def _keyword_answer(
    db: Session, *, workspace: Workspace, profile: Profile, answer: str, body: str, key: str, now: datetime
) -> Message | None:
    return messaging_service.enqueue(
        db,
        workspace_id=workspace.id,
        profile_id=profile.id,
        channel="sms",
        content={"body": body, "keyword_answer": answer},
        dedupe_key=f"sms-keyword:{key}"[:200],
        kind="confirmation",
        now=now,
        priority=0,
    )


@dataclass(frozen=True, slots=True)
class _KeywordChange:
    """What an opt-out or opt-in keyword does: the consent action, the event, the one confirmation."""

    action: str
    state_after: str
    event: str
    text_setting: str
    default_text: str
    answer: str
    outcome: str


_KEYWORD_CHANGES = {
    Keyword.OPT_OUT: _KeywordChange(
        consent_rules.WITHDRAW,
        consent_rules.UNSUBSCRIBED,
        "sms_unsubscribed",
        "stop_text",
        DEFAULT_STOP_TEXT,
        "opt_out",
        "opted_out",
    ),
    Keyword.OPT_IN: _KeywordChange(
        consent_rules.GRANT,
        consent_rules.SUBSCRIBED,
        "sms_resubscribed",
        "start_text",
        DEFAULT_START_TEXT,
        "opt_in",
        "opted_in",
    ),
}


def apply_inbound(
    db: Session, workspace: Workspace, inbound: sms_channel.InboundSms, *, now: datetime
) -> str:
    """Apply one inbound text (already verified and deduplicated); returns what was done."""
    profile = _by_identity(db, workspace.id, ident.PHONE, inbound.from_number)
    if profile is None:
        log.info("inbound SMS from an unknown number (workspace %s)", workspace.id)
        return "unknown_sender"
    base = {"provider_id": inbound.provider_id, "to": inbound.to_number, "keyword": inbound.keyword.value}
    change = _KEYWORD_CHANGES.get(inbound.keyword)
    if change is not None:
        withdraw = change.action == consent_rules.WITHDRAW
        entry = consent_service.record(
            db,
            workspace_id=workspace.id,
            profile_id=profile.id,
            now=now,
            statement=consent_service.Statement(
                channel="sms",
                action=change.action,
                source=KEYWORD_SOURCE,
                actor="sms",
                wording=None if withdraw else inbound.body[:400],
                details={"body": inbound.body[:400], "provider_id": inbound.provider_id}
                if withdraw
                else {"provider_id": inbound.provider_id},
            ),
        )
        timeline_event(
            db, workspace_id=workspace.id, profile_id=profile.id, name=change.event,
            event_id=f"sms-in:{inbound.provider_id}", channel="sms", properties={**base, "body": inbound.body},
            now=now,
        )  # fmt: skip
        # state_before is read under the subscription row's lock: concurrent keywords confirm once
        if entry.state_before != change.state_after:
            text = str(_setting(workspace, "sms", change.text_setting) or change.default_text)
            _keyword_answer(
                db,
                workspace=workspace,
                profile=profile,
                answer=change.answer,
                body=text,
                key=f"c{entry.id}",
                now=now,
            )
        return change.outcome
    if inbound.keyword is Keyword.HELP:
        text = str(_setting(workspace, "sms", "help_text") or DEFAULT_HELP_TEXT)
        _keyword_answer(
            db, workspace=workspace, profile=profile, answer="help", body=text,
            key=f"help:{workspace.id}:{inbound.provider_id}", now=now,
        )  # fmt: skip
        return "help"
    last = db.scalar(
        select(Message)
        .where(
            Message.workspace_id == workspace.id,
            Message.profile_id == profile.id,
            Message.channel == "sms",
            Message.sent_at.is_not(None),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )
    timeline_event(
        db,
        workspace_id=workspace.id,
        profile_id=profile.id,
        name=feedback.event_name("sms", "replied"),
        event_id=f"sms-in:{inbound.provider_id}",
        channel="sms",
        properties={
            **base,
            "body": inbound.body,
            "in_reply_to": last.message_id if last else None,
            "campaign_id": last.campaign_id if last else None,
        },
        now=now,
    )
    return "replied"


def handle_twilio_inbound(
    runtime: Runtime, slug: str, url: str, params: dict[str, list[str]], signature: str | None
) -> str:
    """Verify, deduplicate and apply an inbound-SMS webhook; returns what was done."""
    now = runtime.clock.now()
    with runtime.sessions() as db:
        workspace = _verified_workspace(db, runtime, slug, url, params, signature)
        inbound = sms_channel.parse_inbound(params)
        if not inbound.provider_id:
            raise ValidationFailed("the webhook has no MessageSid")
        if not first_receipt(
            db,
            workspace_id=workspace.id,
            provider="twilio",
            receipt_id=f"{workspace.id}:in:{inbound.provider_id}",
            now=now,
        ):
            db.rollback()
            return "duplicate"
        outcome = apply_inbound(db, workspace, inbound, now=now)
        db.commit()
        return outcome


# -- Twilio: status callbacks -----------------------------------------------------------------------------


def apply_status(
    db: Session, workspace: Workspace, update: sms_channel.SmsStatusUpdate, *, now: datetime
) -> str:
    """Apply one status callback to the message it is about."""
    message = None
    if update.message_id:
        message = db.scalar(
            select(Message).where(
                Message.workspace_id == workspace.id, Message.message_id == update.message_id
            )
        )
    if message is None and update.provider_id:
        message = db.scalar(
            select(Message).where(
                Message.workspace_id == workspace.id, Message.provider_id == update.provider_id
            )
        )
    if message is None:
        return "unknown_message"
    if message.provider_id is None:
        message.provider_id = update.provider_id
    message.updated_at = now
    if update.status in {"sent", "delivered"} and message.status in {repo.UNKNOWN, repo.SENDING, repo.QUEUED}:
        message.status = repo.SENT  # the provider has it: an "unknown" send is settled (R8)
        message.sent_at = message.sent_at or now
        message.status_reason = None
        feedback.record(db, message, "sent", at=now, now=now)
    if update.status == "delivered":
        if message.delivered_at is None:
            message.delivered_at = now
            feedback.record(db, message, "delivered", at=now, now=now)
        return "delivered"
    if update.failed:
        reason = f"provider: {update.status}" + (f" (error {update.error_code})" if update.error_code else "")
        message.status = repo.DEAD
        message.status_reason = reason
        message.last_error = reason
        feedback.record(
            db, message, "failed", at=now, now=now,
            extra={"status": update.status, "error_code": update.error_code},
        )  # fmt: skip
        return "failed"
    return "noted"


def handle_twilio_status(
    runtime: Runtime, slug: str, url: str, params: dict[str, list[str]], signature: str | None
) -> str:
    """Verify, deduplicate and apply a status callback; returns what was done."""
    now = runtime.clock.now()
    with runtime.sessions() as db:
        workspace = _verified_workspace(db, runtime, slug, url, params, signature)
        update = sms_channel.parse_status_callback(params, url)
        if not update.provider_id or not update.status:
            raise ValidationFailed("the callback has no MessageSid or MessageStatus")
        receipt = f"{workspace.id}:st:{update.provider_id}:{update.status}"
        if not first_receipt(db, workspace_id=workspace.id, provider="twilio", receipt_id=receipt, now=now):
            db.rollback()
            return "duplicate"
        outcome = apply_status(db, workspace, update, now=now)
        db.commit()
        return outcome


# -- email bounces and complaints -------------------------------------------------------------------------


def _local_id(raw: str) -> str:
    return raw.strip().strip("<>").split("@", 1)[0]


def complaint_rate(db: Session, *, workspace_id: int, campaign_id: int) -> tuple[int, int]:
    """Return (complaints, sent) of a campaign's email: complaint events over messages that went out."""
    sent = db.scalar(
        select(func.count()).where(
            Message.workspace_id == workspace_id,
            Message.campaign_id == campaign_id,
            Message.sent_at.is_not(None),
        )
    )
    complaint_id = literal("fb:") + Message.message_id + literal(":complained")
    complaints = db.scalar(
        select(func.count())
        .select_from(Message)
        .join(Event, (Event.workspace_id == Message.workspace_id) & (Event.message_id == complaint_id))
        .where(Message.workspace_id == workspace_id, Message.campaign_id == campaign_id)
    )
    return int(complaints or 0), int(sent or 0)


def pause_if_complaints(db: Session, *, workspace_id: int, campaign_id: int) -> bool:
    """Pause the campaign when its complaints exceed 0.3 % of its sent messages (R18); True when paused."""
    complaints, sent = complaint_rate(db, workspace_id=workspace_id, campaign_id=campaign_id)
    if complaints == 0 or complaints <= COMPLAINT_RATE_LIMIT * max(sent, 1):
        return False
    workspace = db.scalar(select(Workspace).where(Workspace.id == workspace_id).with_for_update())
    assert workspace is not None
    settings = dict(workspace.settings or {})
    paused = [int(c) for c in settings.get(PAUSED_CAMPAIGNS) or []]
    if campaign_id not in paused:
        settings[PAUSED_CAMPAIGNS] = sorted({*paused, campaign_id})
        workspace.settings = settings
        log.warning(
            "campaign %s paused: %s complaints over %s sent (workspace %s)",
            campaign_id,
            complaints,
            sent,
            workspace_id,
        )
    return True


def apply_email_feedback(db: Session, workspace: Workspace, doc: Mapping[str, Any], *, now: datetime) -> str:
    """Apply one bounce or complaint report."""
    kind = str(doc.get("type") or "").lower()
    raw_email = str(doc.get("email") or "").strip()
    message = None
    if doc.get("message_id"):
        message = db.scalar(
            select(Message).where(
                Message.workspace_id == workspace.id, Message.message_id == _local_id(str(doc["message_id"]))
            )
        )
    profile = _live(db, message.profile_id) if message is not None else None
    if profile is None and raw_email:
        try:
            profile = _by_identity(db, workspace.id, ident.EMAIL, ident.normalize_email(raw_email))
        except ValueError:
            profile = None
    hard = kind == "complaint" or str(doc.get("bounce_type") or "hard").lower() == "hard"
    if hard:
        addresses = {a for a in (raw_email, raw_email.lower(), message.to_address if message else None) if a}
        if profile is not None and profile.email:
            addresses.add(profile.email)
        for address in addresses:
            profiles_gdpr.suppress(
                db, workspace_id=workspace.id, kind="email", value=address,
                reason="complaint" if kind == "complaint" else "hard_bounce",
            )  # fmt: skip
    action = "complained" if kind == "complaint" else "bounced"
    extra = {"bounce": "hard" if hard else "soft"} if kind == "bounce" else {}
    if message is not None:
        feedback.record(db, message, action, at=now, now=now, extra=extra)
    elif profile is not None:
        timeline_event(
            db, workspace_id=workspace.id, profile_id=profile.id, name=feedback.event_name("email", action),
            event_id=f"fb:email:{action}:{hashlib.sha256(raw_email.encode()).hexdigest()[:24]}:{now.date()}",
            channel="email", properties=extra, now=now,
        )  # fmt: skip
    if kind == "complaint" and profile is not None:
        consent_service.record(
            db,
            workspace_id=workspace.id,
            profile_id=profile.id,
            now=now,
            statement=consent_service.Statement(
                channel="email", action=consent_rules.WITHDRAW, source="complaint", actor="provider"
            ),
        )
    if kind == "complaint" and message is not None and message.campaign_id is not None:
        db.flush()
        if pause_if_complaints(db, workspace_id=workspace.id, campaign_id=message.campaign_id):
            return "complaint_campaign_paused"
    return action


def handle_email_feedback(runtime: Runtime, slug: str, body: bytes, signature: str | None) -> str:
    """Verify, deduplicate and apply an email feedback webhook; returns what was done."""
    now = runtime.clock.now()
    with runtime.sessions() as db:
        workspace = _workspace(db, slug)
        secret = str(_setting(workspace, "email", "feedback_secret") or "") if workspace else ""
        if workspace is None or not webhook_channel.verify_signature(
            secret, signature, body, now=now.timestamp()
        ):
            raise Forbidden("the webhook signature is not valid", code="bad_signature")
        try:
            doc = json.loads(body)
        except ValueError:
            raise ValidationFailed("the body must be JSON") from None
        if not isinstance(doc, dict) or str(doc.get("type") or "").lower() not in {"bounce", "complaint"}:
            raise ValidationFailed('type must be "bounce" or "complaint"')
        if not doc.get("email") and not doc.get("message_id"):
            raise ValidationFailed("give email or message_id")
        receipt = str(doc.get("id") or hashlib.sha256(body).hexdigest())
        if not first_receipt(
            db, workspace_id=workspace.id, provider="email", receipt_id=f"{workspace.id}:{receipt}", now=now
        ):
            db.rollback()
            return "duplicate"
        outcome = apply_email_feedback(db, workspace, doc, now=now)
        db.commit()
        return outcome


# -- routes -----------------------------------------------------------------------------------------------

router = APIRouter(prefix="/webhooks", tags=["webhooks"], include_in_schema=False)


async def _signed_form(request: Request) -> tuple[str, dict[str, list[str]], str | None]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ValidationFailed("webhook body too large")
    params = sms_channel.form_params(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    runtime: Runtime = request.app.state.runtime
    url = runtime.settings.base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url, params, request.headers.get("x-twilio-signature")


def _twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="text/xml")


@router.post("/twilio/{workspace_slug}/sms")
async def twilio_inbound(workspace_slug: str, request: Request) -> Response:
    """Twilio's incoming-message webhook."""
    url, params, signature = await _signed_form(request)
    runtime: Runtime = request.app.state.runtime
    await anyio.to_thread.run_sync(
        partial(handle_twilio_inbound, runtime, workspace_slug, url, params, signature)
    )
    return _twiml()


@router.post("/twilio/{workspace_slug}/status")
async def twilio_status(workspace_slug: str, request: Request) -> Response:
    """Twilio's status callback for messages we sent."""
    url, params, signature = await _signed_form(request)
    runtime: Runtime = request.app.state.runtime
    await anyio.to_thread.run_sync(
        partial(handle_twilio_status, runtime, workspace_slug, url, params, signature)
    )
    return _twiml()


@router.post("/email/{workspace_slug}")
async def email_feedback(workspace_slug: str, request: Request) -> dict[str, str]:
    """Bounce and complaint reports from the email provider (signed JSON)."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ValidationFailed("webhook body too large")
    runtime: Runtime = request.app.state.runtime
    outcome = await anyio.to_thread.run_sync(
        partial(
            handle_email_feedback,
            runtime,
            workspace_slug,
            body,
            request.headers.get(webhook_channel.SIGNATURE_HEADER),
        )
    )
    return {"result": outcome}


def status_callback_url(base_url: str, workspace_slug: str) -> str:
    """Return the status-callback URL the SMS channel gives Twilio for a workspace's messages."""
    return f"{base_url.rstrip('/')}/webhooks/twilio/{workspace_slug}/status"
