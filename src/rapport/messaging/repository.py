"""Every query of the outbox: insert, claim, settle, counters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.models import Message, SendCounter

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
SKIPPED = "skipped"
DEAD = "dead"
UNKNOWN = "unknown"
FINAL = frozenset({SENT, SKIPPED, DEAD, UNKNOWN})


def _insert(db: Session) -> Any:
    return postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert


def insert_message(db: Session, values: dict[str, Any]) -> int | None:
    """Insert one outbox row; None when its (workspace, dedupe key) exists already (R6)."""
    stmt = (
        _insert(db)(Message)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["workspace_id", "dedupe_key"])
        .returning(Message.id)
    )
    return db.execute(stmt).scalar_one_or_none()


def claim(db: Session, *, worker_id: str, now: datetime, lease_until: datetime, limit: int) -> list[Message]:
    """Take due messages for this worker (SKIP LOCKED on PostgreSQL; SQLite's writer lock otherwise)."""
    due = or_(
        and_(Message.status == QUEUED, Message.run_at <= now),
        # A sending row whose lease ran out and whose journal nobody settled: see Deliverer.recover.
    )
    candidates = (
        select(Message.id).where(due).order_by(Message.priority, Message.run_at, Message.id).limit(limit)
    )
    if db.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(Message)
        .where(Message.id.in_(candidates.scalar_subquery()))
        .values(
            status=SENDING,
            claimed_by=worker_id,
            claimed_until=lease_until,
            attempts=Message.attempts + 1,
            updated_at=now,
        )
        .returning(Message)
        .execution_options(synchronize_session=False)
    )
    rows = list(db.scalars(stmt).all())
    rows.sort(key=lambda m: (m.priority, m.run_at, m.id))
    return rows


def stale_sending(db: Session, *, now: datetime, limit: int = 500) -> Sequence[Message]:
    """Return rows left ``sending`` past their lease (their worker died)."""
    return db.scalars(
        select(Message)
        .where(Message.status == SENDING, Message.claimed_until < now)
        .order_by(Message.id)
        .limit(limit)
    ).all()


def by_message_ids(db: Session, message_ids: Sequence[str]) -> Sequence[Message]:
    """Return rows by provider-facing message id."""
    if not message_ids:
        return []
    return db.scalars(select(Message).where(Message.message_id.in_(list(message_ids)))).all()


def take_cap(
    db: Session, *, workspace_id: int, profile_id: int, channel: str, period: str, limit: int
) -> bool:
    """Atomically count one more send against a cap; False (and nothing counted) when it is full (R9)."""
    if limit <= 0:
        return False
    stmt = _insert(db)(SendCounter).values(
        workspace_id=workspace_id, profile_id=profile_id, channel=channel, period=period, count=1
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["workspace_id", "profile_id", "channel", "period"],
        set_={"count": SendCounter.count + 1},
        where=SendCounter.count < limit,
    ).returning(SendCounter.count)
    return db.execute(stmt).scalar_one_or_none() is not None


def give_back_cap(db: Session, *, workspace_id: int, profile_id: int, channel: str, period: str) -> None:
    """Undo one count (the message it was taken for was not sent)."""
    db.execute(
        update(SendCounter)
        .where(
            SendCounter.workspace_id == workspace_id,
            SendCounter.profile_id == profile_id,
            SendCounter.channel == channel,
            SendCounter.period == period,
            SendCounter.count > 0,
        )
        .values(count=SendCounter.count - 1)
    )


def get_message(db: Session, *, workspace_id: int, message_pk: int) -> Message | None:
    """Return one of the workspace's messages."""
    return db.scalar(select(Message).where(Message.workspace_id == workspace_id, Message.id == message_pk))


def list_for_profile(
    db: Session, *, workspace_id: int, profile_id: int, limit: int, offset: int
) -> Sequence[Message]:
    """Return a profile's messages, newest first."""
    return db.scalars(
        select(Message)
        .where(Message.workspace_id == workspace_id, Message.profile_id == profile_id)
        .order_by(Message.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()


def status_counts(db: Session, *, workspace_id: int, campaign_id: int | None = None) -> dict[str, int]:
    """Count messages per status (of one campaign, or all)."""
    stmt = select(Message.status, func.count()).where(Message.workspace_id == workspace_id)
    if campaign_id is not None:
        stmt = stmt.where(Message.campaign_id == campaign_id)
    return {status: int(n) for status, n in db.execute(stmt.group_by(Message.status)).all()}
