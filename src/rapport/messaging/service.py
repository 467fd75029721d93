"""Queue messages in the outbox (in the caller's transaction) and read them back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One message to queue with :func:`enqueue_many` (the same fields as :func:`enqueue`)."""

    profile_id: int
    channel: str
    content: Mapping[str, Any]
    dedupe_key: str
    kind: str = "marketing"
    topic: str = ""
    campaign_id: int | None = None
    variant: str | None = None
    priority: int = 100
    run_at: datetime | None = None
    max_attempts: int = 6


def _validate(channel: str, kind: str, content: Mapping[str, Any]) -> None:
    if channel not in OUTBOX_CHANNELS:
        raise ValidationFailed(
            f"channel must be one of {', '.join(OUTBOX_CHANNELS)}", details={"field": "channel"}
        )
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}", details={"field": "kind"})
    if content.get("template_id") is not None:
        return  # a saved template (content/), validated when it was saved and rendered at send time
    missing = [key for key in REQUIRED[channel] if not content.get(key)]
    if channel == "email" and not (content.get("html") or content.get("text")):
        missing.append("html or text")
    if missing:
        raise ValidationFailed(f"{channel} message needs {', '.join(missing)}", details={"missing": missing})


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
    _validate(channel, kind, content)
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


def enqueue_many(
    db: Session, *, workspace_id: int, rows: Sequence[OutboxRow], now: datetime, profiles_known: bool = False
) -> int:
    """Write many outbox rows in the caller's transaction with a few multi-row INSERTs, and their
    ``queued`` feedback; rows whose dedupe key was used before (or earlier in ``rows``) are skipped (R6).

    Validates every row like :func:`enqueue` (nothing is written when one is invalid or names a profile
    outside the workspace; ``profiles_known``: the caller read every profile from the workspace in this
    transaction, so that read is not made again) and returns how many rows were new. Content shared by
    many rows is serialised once. Example::

        content = {"subject": "Autumn sale", "html": "<p>Hi {{ profile.first_name }}</p>"}
        rows = [OutboxRow(pid, "email", content, f"c{campaign.id}:{pid}:email", campaign_id=campaign.id)
                for pid in audience]
        new = enqueue_many(db, workspace_id=ws.id, rows=rows, now=clock.now())
    """
    checked: set[tuple[str, str, int]] = set()
    unique: dict[str, OutboxRow] = {}
    for row in rows:
        shape = (row.channel, row.kind, id(row.content))
        if shape not in checked:
            _validate(row.channel, row.kind, row.content)
            checked.add(shape)
        unique.setdefault(row.dedupe_key, row)
    if not unique:
        return 0
    if not profiles_known:
        wanted = {row.profile_id for row in unique.values()}
        missing = wanted - repo.existing_profiles(db, workspace_id=workspace_id, profile_ids=sorted(wanted))
        if missing:
            raise NotFound("profile not found", details={"profile_ids": sorted(missing)[:20]})
    values = repo.BulkValues(db)
    stamp = values.time(now)
    contents: dict[int, Any] = {}
    driver_rows: list[tuple[Any, ...]] = []
    ids: dict[str, str] = {}
    for key, row in unique.items():
        content = contents.get(id(row.content))
        if content is None:
            content = contents[id(row.content)] = dict(row.content)
        message_id = ids[key] = new_message_id()
        driver_rows.append(
            (
                workspace_id,
                message_id,
                key,
                row.profile_id,
                row.campaign_id,
                row.variant,
                row.channel,
                row.topic,
                row.kind,
                row.priority,
                repo.QUEUED,
                values.time(row.run_at) if row.run_at is not None else stamp,
                0,
                row.max_attempts,
                values.json(content),
                stamp,
                stamp,
            )
        )
    inserted = repo.insert_messages(db, driver_rows)
    feedback.record_many(
        db,
        ((_Queued(workspace_id, unique[key], ids[key]), "queued", None) for _pk, key in inserted),
        at=now,
        now=now,
    )
    return len(inserted)


@dataclass(frozen=True, slots=True)
class _Queued:
    """A just-inserted row as :func:`feedback.record_many` needs it."""

    workspace_id: int
    row: OutboxRow
    message_id: str

    @property
    def profile_id(self) -> int:
        return self.row.profile_id

    @property
    def channel(self) -> str:
        return self.row.channel

    @property
    def campaign_id(self) -> int | None:
        return self.row.campaign_id

    @property
    def variant(self) -> str | None:
        return self.row.variant

    @property
    def topic(self) -> str:
        return self.row.topic

    @property
    def kind(self) -> str:
        return self.row.kind


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
