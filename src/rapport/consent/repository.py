"""Every query on topics, subscriptions and the consent log."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from rapport.db.planner import one_of, same_workspace
from rapport.models import ConsentRecord, Profile, Subscription, Topic


def get_profile(db: Session, *, workspace_id: int, profile_id: int) -> Profile | None:
    """Return the workspace's live profile with this id (merged-away profiles lead to their survivor)."""
    profile = db.scalar(select(Profile).where(Profile.workspace_id == workspace_id, Profile.id == profile_id))
    hops = 0
    while profile is not None and profile.merged_into_id is not None and hops < 10:
        profile = db.get(Profile, profile.merged_into_id)
        hops += 1
    return profile


def list_topics(db: Session, workspace_id: int, *, include_archived: bool = False) -> Sequence[Topic]:
    """Return the workspace's topics by name."""
    stmt = select(Topic).where(Topic.workspace_id == workspace_id)
    if not include_archived:
        stmt = stmt.where(Topic.archived_at.is_(None))
    return db.scalars(stmt.order_by(Topic.name)).all()


def get_topic(db: Session, *, workspace_id: int, key: str) -> Topic | None:
    """Return the topic with this key."""
    return db.scalar(select(Topic).where(Topic.workspace_id == workspace_id, Topic.key == key))


def get_topic_by_id(db: Session, *, workspace_id: int, topic_id: int) -> Topic | None:
    """Return the topic with this id."""
    return db.scalar(select(Topic).where(Topic.workspace_id == workspace_id, Topic.id == topic_id))


_SUBSCRIPTIONS = select(
    Subscription.profile_id,
    Subscription.channel,
    Subscription.topic,
    Subscription.state,
    Subscription.paused_until,
).where(
    same_workspace(Subscription.workspace_id, bindparam("ws")),
    one_of(Subscription.profile_id, "ids"),
    one_of(Subscription.channel, "channels"),
)


def subscriptions_for(
    db: Session, *, workspace_id: int, profile_ids: Collection[int], channels: Collection[str]
) -> list[tuple[int, str, str, str, datetime | None]]:
    """Return (profile_id, channel, topic, state, paused_until) of many profiles' subscriptions on
    ``channels`` (one query per 5,000 profiles)."""
    ids = sorted(set(profile_ids))
    wanted = sorted(set(channels))
    found: list[tuple[int, str, str, str, datetime | None]] = []
    for start in range(0, len(ids), 5000):
        found.extend(
            (int(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4])
            for r in db.execute(
                _SUBSCRIPTIONS, {"ws": workspace_id, "ids": ids[start : start + 5000], "channels": wanted}
            ).all()
        )
    return found


def topics_by_key(db: Session, *, workspace_id: int, keys: Collection[str]) -> dict[str, Topic]:
    """Return the workspace's topics with these keys."""
    if not keys:
        return {}
    rows = db.scalars(select(Topic).where(Topic.workspace_id == workspace_id, Topic.key.in_(sorted(keys))))
    return {t.key: t for t in rows}


def get_subscription(
    db: Session, *, workspace_id: int, profile_id: int, channel: str, topic: str, for_update: bool = False
) -> Subscription | None:
    """Return one subscription row."""
    stmt = select(Subscription).where(
        Subscription.workspace_id == workspace_id,
        Subscription.profile_id == profile_id,
        Subscription.channel == channel,
        Subscription.topic == topic,
    )
    if for_update:
        stmt = stmt.with_for_update()
    return db.scalar(stmt)


def list_subscriptions(db: Session, *, workspace_id: int, profile_id: int) -> Sequence[Subscription]:
    """Return every subscription row of a profile."""
    return db.scalars(
        select(Subscription)
        .where(Subscription.workspace_id == workspace_id, Subscription.profile_id == profile_id)
        .order_by(Subscription.channel, Subscription.topic)
    ).all()


def merged_profile_ids(db: Session, *, workspace_id: int, profile_id: int) -> list[int]:
    """Return the profile and every profile merged into it (directly or through others)."""
    found = [profile_id]
    frontier = [profile_id]
    while frontier and len(found) < 10_000:
        frontier = list(
            db.scalars(
                select(Profile.id).where(
                    Profile.workspace_id == workspace_id, Profile.merged_into_id.in_(frontier)
                )
            ).all()
        )
        found.extend(frontier)
    return found


def list_log(
    db: Session, *, workspace_id: int, profile_id: int, limit: int = 100, offset: int = 0
) -> Sequence[ConsentRecord]:
    """Return a profile's consent log (with that of the profiles merged into it), newest first.

    The log is append-only, so a merge leaves each record on the profile it was written for.
    """
    ids = merged_profile_ids(db, workspace_id=workspace_id, profile_id=profile_id)
    return db.scalars(
        select(ConsentRecord)
        .where(same_workspace(ConsentRecord.workspace_id, workspace_id), ConsentRecord.profile_id.in_(ids))
        .order_by(ConsentRecord.created_at.desc(), ConsentRecord.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
