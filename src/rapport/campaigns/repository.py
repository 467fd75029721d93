"""Every SQL statement of the campaigns domain."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, exists, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from rapport.db.planner import one_of
from rapport.kit.bounds import MAX_ID
from rapport.kit.clock import as_utc
from rapport.messaging.repository import BulkValues, insert_rows
from rapport.models import (
    Campaign,
    CampaignConversion,
    CampaignRecipient,
    CampaignVariant,
    Event,
    Message,
    MessageTemplate,
    SegmentMember,
)
from rapport.models.event import PROCESSED

_EVENTS = cast(Table, Event.__table__)
_RECIPIENTS = cast(Table, CampaignRecipient.__table__)

PENDING = "pending"
QUEUED = "queued"
HELD_OUT = "held_out"
WAITING = "waiting"
SKIPPED = "skipped"


def _insert(db: Session) -> Any:
    return postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert


def get_campaign(db: Session, *, workspace_id: int, campaign_id: int) -> Campaign | None:
    """Return one of the workspace's campaigns."""
    if not 1 <= campaign_id <= MAX_ID:  # no such row; the database would refuse to compare (a 500)
        return None
    return db.scalar(
        select(Campaign).where(Campaign.workspace_id == workspace_id, Campaign.id == campaign_id)
    )


def lock_campaign(db: Session, *, workspace_id: int, campaign_id: int) -> Campaign | None:
    """Return the campaign locked for a state change (row lock on PostgreSQL; SQLite holds the write lock)."""
    if not 1 <= campaign_id <= MAX_ID:
        return None
    stmt = select(Campaign).where(Campaign.workspace_id == workspace_id, Campaign.id == campaign_id)
    if db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return db.scalar(stmt.execution_options(populate_existing=True))


def name_taken(db: Session, *, workspace_id: int, name: str, exclude_id: int | None = None) -> bool:
    """Whether another campaign of the workspace has this name."""
    stmt = select(Campaign.id).where(Campaign.workspace_id == workspace_id, Campaign.name == name)
    if exclude_id is not None:
        stmt = stmt.where(Campaign.id != exclude_id)
    return db.scalar(stmt.limit(1)) is not None


def list_campaigns(
    db: Session, *, workspace_id: int, kind: str | None = None, include_archived: bool = False
) -> list[Campaign]:
    """Return the workspace's campaigns, newest first."""
    stmt = select(Campaign).where(Campaign.workspace_id == workspace_id)
    if kind is not None:
        stmt = stmt.where(Campaign.kind == kind)
    if not include_archived:
        stmt = stmt.where(Campaign.archived_at.is_(None))
    return list(db.scalars(stmt.order_by(Campaign.created_at.desc(), Campaign.id.desc())))


def campaigns_in(
    db: Session, *, statuses: Collection[str], kinds: Collection[str] | None = None
) -> list[Campaign]:
    """Return every workspace's campaigns in one of ``statuses`` (the worker's view)."""
    stmt = select(Campaign).where(Campaign.status.in_(list(statuses)))
    if kinds is not None:
        stmt = stmt.where(Campaign.kind.in_(list(kinds)))
    return list(db.scalars(stmt.order_by(Campaign.id)))


def active_of(db: Session, *, workspace_id: int, kind: str, statuses: Collection[str]) -> list[Campaign]:
    """Return a workspace's campaigns of ``kind`` in ``statuses``."""
    return list(
        db.scalars(
            select(Campaign).where(
                Campaign.workspace_id == workspace_id,
                Campaign.kind == kind,
                Campaign.status.in_(list(statuses)),
            )
        )
    )


def campaign_names(db: Session, *, workspace_id: int) -> dict[str, int]:
    """Map the workspace's campaign names to ids."""
    rows = db.execute(select(Campaign.name, Campaign.id).where(Campaign.workspace_id == workspace_id)).all()
    return {name: int(cid) for name, cid in rows}


def variants_of(db: Session, *, campaign_id: int) -> list[CampaignVariant]:
    """Return a campaign's arms in key order."""
    return list(
        db.scalars(
            select(CampaignVariant)
            .where(CampaignVariant.campaign_id == campaign_id)
            .order_by(CampaignVariant.key)
        )
    )


def replace_variants(db: Session, *, campaign: Campaign, variants: Sequence[dict[str, Any]]) -> None:
    """Replace a campaign's arms."""
    db.execute(delete(CampaignVariant).where(CampaignVariant.campaign_id == campaign.id))
    for item in variants:
        db.add(CampaignVariant(workspace_id=campaign.workspace_id, campaign_id=campaign.id, **item))
    db.flush()


def templates_by_id(db: Session, *, workspace_id: int, ids: Collection[int]) -> dict[int, MessageTemplate]:
    """Return the workspace's templates with these ids."""
    if not ids:
        return {}
    rows = db.scalars(
        select(MessageTemplate).where(
            MessageTemplate.workspace_id == workspace_id, MessageTemplate.id.in_(list(ids))
        )
    )
    return {row.id: row for row in rows}


# -- audience -------------------------------------------------------------------------------------------


def audience_query(*, workspace_id: int, segment_ids: Sequence[int], exclude_ids: Sequence[int]) -> Any:
    """SELECT the distinct profile ids in any of ``segment_ids`` and none of ``exclude_ids``."""
    member = aliased(SegmentMember)
    excluded = aliased(SegmentMember)
    stmt = (
        select(member.profile_id)
        .where(member.workspace_id == workspace_id, member.segment_id.in_(list(segment_ids)))
        .distinct()
    )
    if exclude_ids:
        stmt = stmt.where(
            ~exists().where(
                excluded.segment_id.in_(list(exclude_ids)), excluded.profile_id == member.profile_id
            )
        )
    return stmt


def count_audience(
    db: Session, *, workspace_id: int, segment_ids: Sequence[int], exclude_ids: Sequence[int]
) -> int:
    """Count the audience of a broadcast now."""
    inner = audience_query(
        workspace_id=workspace_id, segment_ids=segment_ids, exclude_ids=exclude_ids
    ).subquery()
    return int(db.scalar(select(func.count()).select_from(inner)) or 0)


def audience_ids(
    db: Session, *, workspace_id: int, segment_ids: Sequence[int], exclude_ids: Sequence[int]
) -> list[int]:
    """Return the audience's profile ids, ascending."""
    stmt = audience_query(workspace_id=workspace_id, segment_ids=segment_ids, exclude_ids=exclude_ids)
    return sorted(db.scalars(stmt))


def freeze_audience(db: Session, *, campaign: Campaign, now: datetime) -> int:
    """Write one pending recipient row per audience member (one INSERT … SELECT); return how many."""
    source = audience_query(
        workspace_id=campaign.workspace_id,
        segment_ids=campaign.segment_ids,
        exclude_ids=campaign.exclude_segment_ids,
    ).subquery()
    select_rows = select(
        literal(campaign.workspace_id),
        literal(campaign.id),
        source.c.profile_id,
        literal(""),
        literal(""),
        literal(PENDING),
        literal(""),
        literal(now, type_=CampaignRecipient.__table__.c.entered_at.type),
    )
    db.execute(
        insert(_RECIPIENTS).from_select(
            [
                "workspace_id",
                "campaign_id",
                "profile_id",
                "entry_key",
                "variant",
                "state",
                "reason",
                "entered_at",
            ],
            select_rows,
        )
    )
    # rowcount of INSERT … SELECT is not reliable across drivers (psycopg reports -1): count instead
    return int(
        db.scalar(
            select(func.count()).select_from(_RECIPIENTS).where(_RECIPIENTS.c.campaign_id == campaign.id)
        )
        or 0
    )


def claim_pending(db: Session, *, campaign_id: int, limit: int) -> list[tuple[int, int]]:
    """Return up to ``limit`` pending (recipient id, profile id), locked on PostgreSQL (SKIP LOCKED)."""
    stmt = (
        select(CampaignRecipient.id, CampaignRecipient.profile_id)
        .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == PENDING)
        .order_by(CampaignRecipient.id)
        .limit(limit)
    )
    if db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return [(int(r), int(p)) for r, p in db.execute(stmt).all()]


def set_states(db: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Bulk-update recipients: each dict has ``rid`` and the new ``variant``, ``state``, ``reason``, ``message_pk``."""
    items = list(rows)
    if not items:
        return
    table = _RECIPIENTS

    db.execute(
        update(table)
        .where(table.c.id == bindparam("rid"))
        .values(
            variant=bindparam("variant"),
            state=bindparam("state"),
            reason=bindparam("reason"),
            message_pk=bindparam("message_pk"),
        ),
        items,
        execution_options={"synchronize_session": False},
    )


def count_states(db: Session, *, campaign_id: int) -> dict[str, int]:
    """Count a campaign's recipients per state."""
    rows = db.execute(
        select(CampaignRecipient.state, func.count())
        .where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.state)
    ).all()
    return {state: int(n) for state, n in rows}


def outbox_open(db: Session, *, workspace_id: int, campaign_id: int) -> bool:
    """Whether any of the campaign's outbox rows are still queued or being sent."""
    return (
        db.scalar(
            select(Message.id)
            .where(
                Message.workspace_id == workspace_id,
                Message.campaign_id == campaign_id,
                Message.status.in_(["queued", "sending"]),
            )
            .limit(1)
        )
        is not None
    )


def release_waiting(db: Session, *, campaign_id: int) -> int:
    """Turn the waiting recipients pending again (the winner is known); return how many."""
    result = db.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == WAITING)
        .values(state=PENDING)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


_LAST_ENTRIES = (
    select(CampaignRecipient.profile_id, func.max(CampaignRecipient.entered_at))
    .where(
        CampaignRecipient.campaign_id == bindparam("campaign"), one_of(CampaignRecipient.profile_id, "ids")
    )
    .group_by(CampaignRecipient.profile_id)
)


def last_entries(db: Session, *, campaign_id: int, profile_ids: Collection[int]) -> dict[int, datetime]:
    """When each of these profiles last entered the campaign (absent: never)."""
    found: dict[int, datetime] = {}
    ids = list(profile_ids)
    for start in range(0, len(ids), 900):
        rows = db.execute(_LAST_ENTRIES, {"campaign": campaign_id, "ids": ids[start : start + 900]}).all()
        for pid, at in rows:
            found[int(pid)] = as_utc(at)
    return found


#: The columns :func:`insert_recipients` writes, in its rows' order.
RECIPIENT_COLUMNS = (
    "workspace_id", "campaign_id", "profile_id", "entry_key", "variant", "state", "reason", "entered_at",
)  # fmt: skip


def insert_recipients(db: Session, rows: Sequence[dict[str, Any]]) -> set[tuple[int, str]]:
    """Insert recipient entries (dicts of ``RECIPIENT_COLUMNS``), skipping (campaign, profile, entry) that
    exist; return the new (profile id, entry key) pairs.

    Through ``messaging.repository.insert_rows``: on PostgreSQL one short statement over a JSON array of
    rows, parsed and planned the same whatever the row count. SQLAlchemy's executemany batched the rows
    into a multi-row VALUES of eight parameters a row, a statement text too long for psycopg's cache of
    converted queries: at 50 entries a batch it cost the event processor ~60 us an entry against ~20."""
    if not rows:
        return set()
    values = BulkValues(db)
    ordered = [[row[name] for name in RECIPIENT_COLUMNS] for row in rows]
    for row in ordered:
        row[-1] = values.time(row[-1])  # entered_at
    found = insert_rows(
        db,
        _RECIPIENTS,
        RECIPIENT_COLUMNS,
        ordered,
        conflict="ON CONFLICT (campaign_id, profile_id, entry_key) DO NOTHING",
        returning="profile_id, entry_key",
    )
    return {(int(pid), str(key)) for pid, key in found}


def list_recipients(
    db: Session, *, campaign_id: int, limit: int, offset: int, variant: str | None = None
) -> list[CampaignRecipient]:
    """Return a page of a campaign's recipients by id."""
    stmt = select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id)
    if variant is not None:
        stmt = stmt.where(CampaignRecipient.variant == variant)
    return list(db.scalars(stmt.order_by(CampaignRecipient.id).limit(limit).offset(offset)))


def move_recipients(db: Session, *, workspace_id: int, survivor_id: int, merged_id: int) -> None:
    """Give a merged profile's campaign entries to the survivor (entries both had stay the survivor's)."""
    survivor = aliased(CampaignRecipient)
    duplicate = exists().where(
        survivor.campaign_id == CampaignRecipient.campaign_id,
        survivor.entry_key == CampaignRecipient.entry_key,
        survivor.profile_id == survivor_id,
    )
    db.execute(
        delete(CampaignRecipient)
        .where(
            CampaignRecipient.workspace_id == workspace_id,
            CampaignRecipient.profile_id == merged_id,
            duplicate,
        )
        .execution_options(synchronize_session=False)
    )
    for model in (CampaignRecipient, CampaignConversion):
        db.execute(
            update(model)
            .where(model.workspace_id == workspace_id, model.profile_id == merged_id)
            .values(profile_id=survivor_id)
            .execution_options(synchronize_session=False)
        )


# -- held-out events ------------------------------------------------------------------------------------


def insert_events(db: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Append processed events (held out, campaign entry) deduplicated by (workspace, message id)."""
    if not rows:
        return
    db.execute(
        _insert(db)(_EVENTS).on_conflict_do_nothing(index_elements=["workspace_id", "message_id"]),
        [
            {
                "type": "track",
                "traits": {},
                "context": {},
                "extra": {},
                "source": "rapport",
                "state": PROCESSED,
                "channel": "server",
                **row,
            }
            for row in rows
        ],
    )


# -- measurement ----------------------------------------------------------------------------------------


def recipients_by_arm(db: Session, *, campaign_id: int) -> dict[tuple[str, str], int]:
    """Count recipients per (variant, state)."""
    rows = db.execute(
        select(CampaignRecipient.variant, CampaignRecipient.state, func.count())
        .where(CampaignRecipient.campaign_id == campaign_id)
        .group_by(CampaignRecipient.variant, CampaignRecipient.state)
    ).all()
    return {(variant, state): int(n) for variant, state, n in rows}


def messages_by_arm(db: Session, *, workspace_id: int, campaign_id: int) -> dict[str, dict[str, int]]:
    """Per variant: messages per status, and how many were opened and clicked."""
    rows = db.execute(
        select(
            Message.variant,
            Message.status,
            func.count(),
            func.count(Message.opened_at),
            func.count(Message.clicked_at),
            func.count(Message.delivered_at),
        )
        .where(Message.workspace_id == workspace_id, Message.campaign_id == campaign_id)
        .group_by(Message.variant, Message.status)
    ).all()
    out: dict[str, dict[str, int]] = {}
    for variant, status, n, opened, clicked, delivered in rows:
        bucket = out.setdefault(variant or "", {})
        bucket[status] = bucket.get(status, 0) + int(n)
        bucket["opened"] = bucket.get("opened", 0) + int(opened)
        bucket["clicked"] = bucket.get("clicked", 0) + int(clicked)
        bucket["delivered_at"] = bucket.get("delivered_at", 0) + int(delivered)
    return out


def conversions_by_arm(db: Session, *, campaign_id: int) -> dict[str, tuple[int, float]]:
    """Per variant: conversions and revenue."""
    rows = db.execute(
        select(
            CampaignConversion.variant, func.count(), func.coalesce(func.sum(CampaignConversion.revenue), 0.0)
        )
        .where(CampaignConversion.campaign_id == campaign_id)
        .group_by(CampaignConversion.variant)
    ).all()
    return {variant: (int(n), float(revenue)) for variant, n, revenue in rows}


@dataclass(frozen=True, slots=True)
class GoalCampaign:
    """What measuring a campaign's goal needs of it (read for every processed batch: no ORM objects)."""

    id: int
    workspace_id: int
    goal_event: str
    goal_days: int
    goal_revenue_property: str


def goal_campaigns(db: Session, *, workspace_id: int, statuses: Collection[str]) -> list[GoalCampaign]:
    """Campaigns of the workspace whose goals are being measured."""
    rows = db.execute(
        select(
            Campaign.id,
            Campaign.workspace_id,
            Campaign.goal_event,
            Campaign.goal_days,
            Campaign.goal_revenue_property,
        ).where(Campaign.workspace_id == workspace_id, Campaign.status.in_(list(statuses)))
    )
    return [GoalCampaign(*row) for row in rows]


def events_named(db: Session, *, event_ids: Sequence[int], names: Collection[str]) -> list[Any]:
    """Return (id, message_id, event, profile_id, timestamp, properties) of these events with these names."""
    if not event_ids or not names:
        return []
    out: list[Any] = []
    ids = list(event_ids)
    for start in range(0, len(ids), 900):
        out.extend(
            db.execute(
                select(
                    Event.id,
                    Event.message_id,
                    Event.event,
                    Event.profile_id,
                    Event.timestamp,
                    Event.properties,
                ).where(
                    Event.id.in_(ids[start : start + 900]),
                    Event.event.in_(list(names)),
                    Event.profile_id.is_not(None),
                )
            ).all()
        )
    return out


def open_entries(
    db: Session, *, campaign_ids: Collection[int], profile_ids: Collection[int], since: datetime
) -> list[Any]:
    """Entries (id, campaign_id, profile_id, variant, entered_at) since ``since`` with no conversion yet."""
    if not campaign_ids or not profile_ids:
        return []
    converted = exists().where(CampaignConversion.recipient_id == CampaignRecipient.id)
    return list(
        db.execute(
            select(
                CampaignRecipient.id,
                CampaignRecipient.campaign_id,
                CampaignRecipient.profile_id,
                CampaignRecipient.variant,
                CampaignRecipient.entered_at,
            ).where(
                CampaignRecipient.campaign_id.in_(list(campaign_ids)),
                CampaignRecipient.profile_id.in_(list(profile_ids)),
                CampaignRecipient.entered_at >= since,
                CampaignRecipient.state.in_([QUEUED, HELD_OUT]),
                ~converted,
            )
        ).all()
    )


def insert_conversion(db: Session, values: dict[str, Any]) -> bool:
    """Record a conversion; False when that entry converted already."""
    result = db.execute(
        _insert(db)(cast(Table, CampaignConversion.__table__))
        .values(**values)
        .on_conflict_do_nothing(index_elements=["recipient_id"])
    )
    return bool(getattr(result, "rowcount", 0))


def top_campaigns(
    db: Session, *, workspace_id: int, since: datetime, until: datetime, limit: int = 5
) -> list[Any]:
    """(campaign id, name, conversions, revenue) of the campaigns whose treated recipients brought the
    most revenue in [since, until)."""
    return list(
        db.execute(
            select(
                Campaign.id,
                Campaign.name,
                func.count(CampaignConversion.id),
                func.coalesce(func.sum(CampaignConversion.revenue), 0.0),
            )
            .join(
                CampaignConversion,
                and_(
                    CampaignConversion.campaign_id == Campaign.id,
                    CampaignConversion.converted_at >= since,
                    CampaignConversion.converted_at < until,
                ),
            )
            .where(Campaign.workspace_id == workspace_id, CampaignConversion.variant != "control")
            .group_by(Campaign.id, Campaign.name)
            .order_by(func.coalesce(func.sum(CampaignConversion.revenue), 0.0).desc())
            .limit(limit)
        ).all()
    )


def conversions_between(db: Session, *, workspace_id: int, since: datetime, until: datetime) -> list[Any]:
    """(converted_at, revenue) of the workspace's non-control conversions in [since, until)."""
    return list(
        db.execute(
            select(CampaignConversion.converted_at, CampaignConversion.revenue).where(
                CampaignConversion.workspace_id == workspace_id,
                CampaignConversion.variant != "control",
                CampaignConversion.converted_at >= since,
                CampaignConversion.converted_at < until,
            )
        ).all()
    )
