"""Queue messages in the outbox (in the caller's transaction) and read them back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from rapport.errors import NotFound, ValidationFailed
from rapport.messaging import feedback
from rapport.messaging import repository as repo
from rapport.models import Message, Profile

#: Channels the outbox can deliver (push: messaging/push_delivery.py; inapp: messaging/inapp.py).
OUTBOX_CHANNELS = ("email", "sms", "webhook", "push", "inapp")
KINDS = ("marketing", "service", "confirmation")
REQUIRED = {
    "email": ("subject",),
    "sms": ("body",),
    "webhook": ("url", "body"),
    "push": ("title",),
    "inapp": ("title",),
}


def new_message_id() -> str:
    """Return a fresh provider-facing message id (also the SMTP Message-ID's local part)."""
    return uuid.uuid4().hex


def enqueue(
    db: Session,
    *,
    workspace_id: int,
    profile_id: int,
    channel: str,
    content: Mapping[str, Any],
    dedupe_key: str,
    now: datetime,
    kind: str = "marketing",
    topic: str = "",
    campaign_id: int | None = None,
    variant: str | None = None,
    priority: int = 100,
    run_at: datetime | None = None,
    max_attempts: int = 6,
) -> Message | None:
    """Write one outbox row (the decision to send) in the caller's transaction; None when its dedupe key
    was used before (the same decision is never made twice, R6)."""
    if channel not in OUTBOX_CHANNELS:
        raise ValidationFailed(
            f"channel must be one of {', '.join(OUTBOX_CHANNELS)}", details={"field": "channel"}
        )
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", details={"field": "kind"})
    missing = [key for key in REQUIRED[channel] if not content.get(key)]
    if channel == "email" and not (content.get("html") or content.get("text")):
        missing.append("html or text")
    if missing:
        raise ValidationFailed(f"{channel} message needs {', '.join(missing)}", details={"missing": missing})
    if db.get(Profile, profile_id) is None:
        raise NotFound("profile not found")
    values = {
        "workspace_id": workspace_id,
        "message_id": new_message_id(),
        "dedupe_key": dedupe_key,
        "profile_id": profile_id,
        "campaign_id": campaign_id,
        "variant": variant,
        "channel": channel,
        "topic": topic,
        "kind": kind,
        "priority": priority,
        "status": repo.QUEUED,
        "run_at": run_at or now,
        "attempts": 0,
        "max_attempts": max_attempts,
        "content": dict(content),
        "created_at": now,
        "updated_at": now,
    }
    pk = repo.insert_message(db, values)
    if pk is None:
        return None
    message = db.get(Message, pk)
    assert message is not None
    feedback.record(db, message, "queued", at=now, now=now)
    return message


def get_message(db: Session, *, workspace_id: int, message_pk: int) -> Message:
    """Return one of the workspace's messages or raise NotFound."""
    message = repo.get_message(db, workspace_id=workspace_id, message_pk=message_pk)
    if message is None:
        raise NotFound("message not found")
    return message


def list_for_profile(
    db: Session, *, workspace_id: int, profile_id: int, limit: int = 50, offset: int = 0
) -> Sequence[Message]:
    """Return the messages a profile was sent (or skipped for), newest first."""
    return repo.list_for_profile(
        db, workspace_id=workspace_id, profile_id=profile_id, limit=limit, offset=offset
    )
