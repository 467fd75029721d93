"""The in-app inbox: outbox rows on the ``inapp`` channel, and the API the app polls with the user's identity.

Delivery: ``InboxChannel`` (always registered) accepts every message without a provider; the renderer
stores what it rendered in ``content["rendered"]`` (title, body, url, image), so the inbox shows the text of
send time. The app polls ``GET /v1/inbox?userId=…`` (write key; ``status=unread|all``): messages handed to
the app for the first time are marked delivered (``delivered_at``, ``inapp_delivered``). ``POST
/v1/inbox/{message_id}/read`` sets ``read_at`` (and ``opened_at``, ``inapp_opened``); ``…/dismiss`` sets
``dismissed_at`` (``inapp_dismissed``) and hides the message.

The write key is public, so anyone holding it could ask for any userId's inbox. A workspace that minds sets
``{"inapp": {"identity_secret": "…"}}``: every call must then carry ``userHash`` = hex HMAC-SHA256 of the
userId under that secret, computed by the customer's own server (the Intercom-style identity check).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rapport.api.deps import DbSession, get_runtime
from rapport.channels.base import OutboundMessage, SendJournal, SendResult, SendStatus
from rapport.errors import Forbidden, NotFound
from rapport.messaging import feedback
from rapport.messaging import repository as repo
from rapport.messaging.push_api import Sdk, resolve_profile
from rapport.models import Message, Profile, Workspace
from rapport.runtime import Runtime

CHANNEL = "inapp"
RENDERED_FIELDS = ("title", "body", "url", "image")


class InboxChannel:
    """The ``inapp`` channel: nothing to hand over — the row itself is the inbox entry."""

    supports_journal = True
    name = CHANNEL

    def send(self, batch: Sequence[OutboundMessage], journal: SendJournal | None = None) -> list[SendResult]:
        """Accept every message at once."""
        results = []
        for message in batch:
            if journal is not None:
                journal.committing(message.message_id)
                journal.accepted(message.message_id, "inbox")
            results.append(SendResult(message.message_id, SendStatus.SENT, provider_id="inbox"))
        return results

    def close(self) -> None:
        """Nothing to release."""


def user_hash(secret: str, user_id: str) -> str:
    """Return the identity check value of ``user_id`` (hex HMAC-SHA256)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def _person(
    db: Session, workspace_id: int, user_id: str | None, anonymous_id: str | None, given_hash: str | None
) -> Profile:
    workspace = db.get(Workspace, workspace_id)
    settings = ((workspace.settings if workspace else None) or {}).get(CHANNEL) or {}
    secret = settings.get("identity_secret") if isinstance(settings, dict) else None
    if secret:
        if (
            not user_id
            or not given_hash
            or not hmac.compare_digest(user_hash(str(secret), user_id), given_hash)
        ):
            raise Forbidden("this workspace requires userId with a valid userHash", code="bad_user_hash")
        anonymous_id = None
    return resolve_profile(db, workspace_id, user_id=user_id, anonymous_id=anonymous_id)


def _item(message: Message) -> dict[str, Any]:
    rendered = (message.content or {}).get("rendered") or {}
    return {
        "id": message.message_id,
        **{key: rendered.get(key) for key in RENDERED_FIELDS},
        "data": (message.content or {}).get("data") or {},
        "created_at": message.sent_at or message.created_at,
        "read": message.read_at is not None,
        "read_at": message.read_at,
    }


def list_inbox(
    db: Session, *, profile: Profile, unread_only: bool, limit: int, now: datetime
) -> tuple[list[Message], int]:
    """Return the profile's visible inbox messages (newest first) and its unread count; marks delivery."""
    visible = (
        Message.workspace_id == profile.workspace_id,
        Message.profile_id == profile.id,
        Message.channel == CHANNEL,
        Message.status == repo.SENT,
        Message.dismissed_at.is_(None),
    )
    stmt = select(Message).where(*visible)
    if unread_only:
        stmt = stmt.where(Message.read_at.is_(None))
    messages = list(db.scalars(stmt.order_by(Message.id.desc()).limit(limit)).all())
    unread = int(db.scalar(select(func.count()).where(*visible, Message.read_at.is_(None))) or 0)
    for message in messages:
        if message.delivered_at is None:
            message.delivered_at = now
            feedback.record(db, message, "delivered", at=now, now=now)
    return messages, unread


def _own_message(db: Session, profile: Profile, message_id: str) -> Message:
    message = db.scalar(
        select(Message).where(
            Message.workspace_id == profile.workspace_id,
            Message.message_id == message_id,
            Message.profile_id == profile.id,
            Message.channel == CHANNEL,
            Message.status == repo.SENT,
        )
    )
    if message is None:
        raise NotFound("message not found")
    return message


def mark_read(db: Session, message: Message, *, now: datetime) -> None:
    """Mark an inbox message read (counted as opened)."""
    if message.read_at is None:
        message.read_at = now
    if message.opened_at is None:
        message.opened_at = now
        feedback.record(db, message, "opened", at=now, now=now)


def dismiss(db: Session, message: Message, *, now: datetime) -> None:
    """Hide an inbox message for good."""
    if message.dismissed_at is None:
        message.dismissed_at = now
        feedback.record(db, message, "dismissed", at=now, now=now)


router = APIRouter(prefix="/v1/inbox", tags=["inbox"])
UserId = Annotated[str | None, Query(alias="userId", max_length=400)]
AnonymousId = Annotated[str | None, Query(alias="anonymousId", max_length=400)]
Rt = Annotated[Runtime, Depends(get_runtime)]
UserHash = Annotated[str | None, Query(alias="userHash", max_length=128)]


@router.get("")
def get_inbox(
    principal: Sdk,
    db: DbSession,
    runtime: Rt,
    user_id: UserId = None,
    anonymous_id: AnonymousId = None,
    user_hash_value: UserHash = None,
    status: Annotated[str, Query(pattern="^(unread|all)$")] = "all",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    """List the person's in-app messages (newest first) with the unread count."""
    profile = _person(db, principal.workspace_id, user_id, anonymous_id, user_hash_value)
    now = runtime.clock.now()
    messages, unread = list_inbox(db, profile=profile, unread_only=status == "unread", limit=limit, now=now)
    db.commit()
    return {"unread": unread, "messages": [_item(m) for m in messages]}


@router.post("/{message_id}/read")
def read_message(
    message_id: str,
    principal: Sdk,
    db: DbSession,
    runtime: Rt,
    user_id: UserId = None,
    anonymous_id: AnonymousId = None,
    user_hash_value: UserHash = None,
) -> dict[str, Any]:
    """Mark one of the person's in-app messages read."""
    profile = _person(db, principal.workspace_id, user_id, anonymous_id, user_hash_value)
    message = _own_message(db, profile, message_id)
    mark_read(db, message, now=runtime.clock.now())
    db.commit()
    return {"success": True, "id": message.message_id, "read_at": message.read_at}


@router.post("/{message_id}/dismiss")
def dismiss_message(
    message_id: str,
    principal: Sdk,
    db: DbSession,
    runtime: Rt,
    user_id: UserId = None,
    anonymous_id: AnonymousId = None,
    user_hash_value: UserHash = None,
) -> dict[str, Any]:
    """Dismiss one of the person's in-app messages."""
    profile = _person(db, principal.workspace_id, user_id, anonymous_id, user_hash_value)
    message = _own_message(db, profile, message_id)
    dismiss(db, message, now=runtime.clock.now())
    db.commit()
    return {"success": True, "id": message.message_id, "dismissed_at": message.dismissed_at}
