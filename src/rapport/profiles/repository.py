"""Every query of the profiles domain; all scoped to one workspace (R20)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select
from sqlalchemy.orm import Session

from rapport.db.planner import same_workspace
from rapport.kit.pagination import Page
from rapport.models import (
    Event,
    Identity,
    Profile,
    ProfileMerge,
    Segment,
    SegmentMember,
    SendCounter,
    Subscription,
    TraitChange,
)


def get(db: Session, *, workspace_id: int, profile_id: int) -> Profile | None:
    """Return the profile row (a tombstone too), or None."""
    return db.scalars(
        select(Profile).where(Profile.workspace_id == workspace_id, Profile.id == profile_id)
    ).one_or_none()


def owner_of(db: Session, *, workspace_id: int, kind: str, value: str) -> int | None:
    """Return the id of the profile holding an identifier."""
    return db.scalars(
        select(Identity.profile_id).where(
            Identity.workspace_id == workspace_id, Identity.kind == kind, Identity.value == value
        )
    ).one_or_none()


def search(
    db: Session,
    *,
    workspace_id: int,
    page: Page,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    q: str | None = None,
) -> Sequence[Profile]:
    """Return live profiles matching every given filter (email/phone exact, name prefix, q any of them)."""
    stmt = select(Profile).where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
    if email is not None:
        stmt = stmt.where(Profile.email == email)
    if phone is not None:
        stmt = stmt.where(Profile.phone == phone)
    if name is not None:
        stmt = stmt.where(_name_starts(name))
    if q is not None:
        pattern = _prefix(q.lower())
        stmt = stmt.where(
            or_(
                Profile.email.like(pattern, escape="\\"),
                Profile.phone.like(_prefix(q), escape="\\"),
                _name_starts(q),
            )
        )
    return db.scalars(stmt.order_by(Profile.id).limit(page.limit).offset(page.offset)).all()


def _name_starts(text: str) -> ColumnElement[bool]:
    """The name, or any word of it, starts with ``text`` (case-insensitive): "wood" finds "Ann Wood"."""
    lowered = func.lower(Profile.name)
    pattern = _prefix(text.strip().lower())
    return or_(lowered.like(pattern, escape="\\"), lowered.like("% " + pattern, escape="\\"))


def _prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def identities(db: Session, *, workspace_id: int, profile_id: int) -> Sequence[Identity]:
    """Return a profile's identifiers, oldest first."""
    return db.scalars(
        select(Identity)
        .where(same_workspace(Identity.workspace_id, workspace_id), Identity.profile_id == profile_id)
        .order_by(Identity.id)
    ).all()


def merges(db: Session, *, workspace_id: int, profile_id: int) -> Sequence[ProfileMerge]:
    """Return the merges a profile took part in, oldest first."""
    return db.scalars(
        select(ProfileMerge)
        .where(
            ProfileMerge.workspace_id == workspace_id,
            or_(ProfileMerge.survivor_id == profile_id, ProfileMerge.merged_id == profile_id),
        )
        .order_by(ProfileMerge.id)
    ).all()


def events(
    db: Session,
    *,
    workspace_id: int,
    profile_id: int,
    page: Page,
    types: Sequence[str] = (),
    channels: Sequence[str] = (),
    name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Sequence[Event]:
    """Return a profile's events, newest first, filtered by type, channel, name and time."""
    stmt = select(Event).where(Event.workspace_id == workspace_id, Event.profile_id == profile_id)
    if types:
        stmt = stmt.where(Event.type.in_(list(types)))
    if channels:
        stmt = stmt.where(Event.channel.in_(list(channels)))
    if name is not None:
        stmt = stmt.where(Event.event == name)
    if since is not None:
        stmt = stmt.where(Event.timestamp >= since)
    if until is not None:
        stmt = stmt.where(Event.timestamp < until)
    stmt = stmt.order_by(Event.timestamp.desc(), Event.id.desc()).limit(page.limit).offset(page.offset)
    return db.scalars(stmt).all()


def iter_events(db: Session, *, workspace_id: int, profile_id: int, chunk: int = 1000) -> Iterator[Event]:
    """Yield every event of a profile in id order, a chunk at a time (exports)."""
    after = 0
    while True:
        rows = db.scalars(
            select(Event)
            .where(Event.workspace_id == workspace_id, Event.profile_id == profile_id, Event.id > after)
            .order_by(Event.id)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id


def trait_history(
    db: Session, *, workspace_id: int, profile_id: int, page: Page, name: str | None = None
) -> Sequence[TraitChange]:
    """Return a profile's trait changes, newest first."""
    stmt = select(TraitChange).where(
        same_workspace(TraitChange.workspace_id, workspace_id), TraitChange.profile_id == profile_id
    )
    if name is not None:
        stmt = stmt.where(TraitChange.name == name)
    stmt = stmt.order_by(TraitChange.set_at.desc(), TraitChange.id.desc())
    return db.scalars(stmt.limit(page.limit).offset(page.offset)).all()


def all_trait_history(db: Session, *, workspace_id: int, profile_id: int) -> Sequence[TraitChange]:
    """Return every trait change of a profile, oldest first (exports)."""
    return db.scalars(
        select(TraitChange)
        .where(same_workspace(TraitChange.workspace_id, workspace_id), TraitChange.profile_id == profile_id)
        .order_by(TraitChange.id)
    ).all()


def tombstones_of(db: Session, *, workspace_id: int, profile_id: int) -> list[int]:
    """Return the ids of profiles merged into this one."""
    return list(
        db.scalars(
            select(Profile.id).where(
                Profile.workspace_id == workspace_id, Profile.merged_into_id == profile_id
            )
        )
    )


def delete_person(db: Session, *, workspace_id: int, profile_ids: Sequence[int]) -> dict[str, int]:
    """Delete the events, trait history, identities, merges and rows of these profiles; return counts."""
    ids = list(profile_ids)
    counts: dict[str, int] = {}
    for label, stmt in (
        (
            "events",
            delete(Event).where(same_workspace(Event.workspace_id, workspace_id), Event.profile_id.in_(ids)),
        ),
        (
            "trait_changes",
            delete(TraitChange).where(
                same_workspace(TraitChange.workspace_id, workspace_id), TraitChange.profile_id.in_(ids)
            ),
        ),
        (
            "identities",
            delete(Identity).where(
                same_workspace(Identity.workspace_id, workspace_id), Identity.profile_id.in_(ids)
            ),
        ),
        (
            "merges",
            delete(ProfileMerge).where(
                ProfileMerge.workspace_id == workspace_id,
                or_(ProfileMerge.survivor_id.in_(ids), ProfileMerge.merged_id.in_(ids)),
            ),
        ),
    ):
        result = db.execute(stmt.execution_options(synchronize_session=False))
        counts[label] = int(getattr(result, "rowcount", 0) or 0)
    merged = list(
        db.scalars(
            select(Profile.id).where(Profile.workspace_id == workspace_id, Profile.merged_into_id.in_(ids))
        )
    )
    db.execute(  # frequency-cap counters carry no foreign key (migration 0011): deleted here, by key
        delete(SendCounter)
        .where(SendCounter.workspace_id == workspace_id, SendCounter.profile_id.in_(ids + merged))
        .execution_options(synchronize_session=False)
    )
    db.execute(
        delete(Profile)
        .where(Profile.workspace_id == workspace_id, Profile.id.in_(merged))
        .execution_options(synchronize_session=False)
    )
    db.execute(
        delete(Profile)
        .where(Profile.workspace_id == workspace_id, Profile.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return counts


def count_overview(db: Session, *, workspace_id: int) -> dict[str, int]:
    """Count live profiles, those with an email and those with a phone, in one scan."""
    row = db.execute(
        select(func.count(), func.count(Profile.email), func.count(Profile.phone)).where(
            Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None)
        )
    ).one()
    return {"total": int(row[0]), "with_email": int(row[1]), "with_phone": int(row[2])}


# -- the marketer UI: directory search, profile page extras and dashboard figures -----------------------


def live_by_ids(db: Session, *, workspace_id: int, profile_ids: Sequence[int]) -> Sequence[Profile]:
    """Return the live profiles among ``profile_ids`` (primary-key lookups)."""
    if not profile_ids:
        return []
    return db.scalars(
        select(Profile).where(
            Profile.workspace_id == workspace_id,
            Profile.id.in_(list(profile_ids)),
            Profile.merged_into_id.is_(None),
        )
    ).all()


def owners_of(
    db: Session, *, workspace_id: int, pairs: Sequence[tuple[str, str]]
) -> Sequence[tuple[int, str]]:
    """Return (profile id, kind) of the profiles holding any of these (kind, normalised value) pairs."""
    if not pairs:
        return []
    stmt = select(Identity.profile_id, Identity.kind).where(
        Identity.workspace_id == workspace_id,
        or_(*(and_(Identity.kind == kind, Identity.value == value) for kind, value in pairs)),
    )
    return [(int(pid), str(kind)) for pid, kind in db.execute(stmt.order_by(Identity.id)).all()]


def prefix_range(column: Any, prefix: str) -> ColumnElement[bool]:
    """Return ``prefix <= column < next(prefix)``: a condition a plain b-tree index answers."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < upper)


#: The columns a directory search may match by prefix; each has a ``(workspace_id, column)`` index.
PREFIX_COLUMNS = {"name": Profile.name, "email": Profile.email, "phone": Profile.phone}


def starting_with(
    db: Session, *, workspace_id: int, column: str, prefix: str, limit: int
) -> Sequence[Profile]:
    """Return up to ``limit`` live profiles whose ``column`` starts with ``prefix``, by that column then id.

    The range walks the ``(workspace_id, column)`` index in order and stops after ``limit`` rows; the
    case-insensitive LIKE on the same column keeps only true matches (the range finds, the LIKE decides).
    """
    field = PREFIX_COLUMNS[column]
    if not prefix:
        return []
    return db.scalars(
        select(Profile)
        .where(
            Profile.workspace_id == workspace_id,
            prefix_range(field, prefix),
            func.lower(field).like(_prefix(prefix.lower()), escape="\\"),
            Profile.merged_into_id.is_(None),
        )
        .order_by(field, Profile.id)
        .limit(limit)
    ).all()


def latest_profiles(db: Session, *, workspace_id: int, page: Page) -> Sequence[Profile]:
    """Return live profiles, newest first."""
    return db.scalars(
        select(Profile)
        .where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
        .order_by(Profile.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    ).all()


def event_channels(db: Session, *, workspace_id: int, profile_id: int) -> list[str]:
    """Return the distinct channels of a profile's events."""
    return sorted(
        str(c)
        for c in db.scalars(
            select(Event.channel)
            .where(Event.workspace_id == workspace_id, Event.profile_id == profile_id)
            .distinct()
        )
    )


def segment_memberships(db: Session, *, workspace_id: int, profile_id: int) -> Sequence[Any]:
    """Return (segment id, name, entered_at) of the live segments a profile is in, by name."""
    return db.execute(
        select(Segment.id, Segment.name, SegmentMember.entered_at)
        .join(Segment, Segment.id == SegmentMember.segment_id)
        .where(
            SegmentMember.workspace_id == workspace_id,
            SegmentMember.profile_id == profile_id,
            Segment.archived_at.is_(None),
        )
        .order_by(Segment.name)
    ).all()


def customer_figures(
    db: Session, *, workspace_id: int, active_since: datetime, new_since: datetime
) -> dict[str, int]:
    """Count live profiles: total, known (email, phone or user id), with email/phone, active, new; one scan."""
    has_user_id = (
        select(Identity.id).where(Identity.profile_id == Profile.id, Identity.kind == "user_id").exists()
    )
    known = or_(Profile.email.is_not(None), Profile.phone.is_not(None), has_user_id)
    first_seen = func.coalesce(Profile.first_seen_at, Profile.created_at)
    row = db.execute(
        select(
            func.count(),
            func.count(Profile.email),
            func.count(Profile.phone),
            func.coalesce(func.sum(case((known, 1), else_=0)), 0),
            func.coalesce(func.sum(case((Profile.last_seen_at >= active_since, 1), else_=0)), 0),
            func.coalesce(func.sum(case((first_seen >= new_since, 1), else_=0)), 0),
        ).where(Profile.workspace_id == workspace_id, Profile.merged_into_id.is_(None))
    ).one()
    keys = ("total", "with_email", "with_phone", "known", "active", "new")
    return {key: int(value or 0) for key, value in zip(keys, row, strict=True)}


def profiles_with_device(db: Session, *, workspace_id: int) -> int:
    """Count live profiles holding at least one push device token."""
    return int(
        db.scalar(
            select(func.count(func.distinct(Identity.profile_id)))
            .join(Profile, Profile.id == Identity.profile_id)
            .where(
                Identity.workspace_id == workspace_id,
                Identity.kind == "device_token",
                Profile.merged_into_id.is_(None),
            )
        )
        or 0
    )


def _address_condition(channel: Any) -> ColumnElement[bool]:
    """True when the profile has an address on the subscription's channel (a CASE, so the device-token
    probe runs only for push rows)."""
    has_device = (
        select(Identity.id).where(Identity.profile_id == Profile.id, Identity.kind == "device_token").exists()
    )
    return (
        case(
            (channel == "email", case((Profile.email.is_not(None), 1), else_=0)),
            (channel == "sms", case((Profile.phone.is_not(None), 1), else_=0)),
            (channel == "push", case((has_device, 1), else_=0)),
            else_=1,
        )
        == 1
    )


def channel_states(db: Session, *, workspace_id: int) -> dict[str, dict[str, int]]:
    """Count live profiles with an address per channel and state of their channel-wide subscription."""
    rows = db.execute(
        select(Subscription.channel, Subscription.state, func.count())
        .join(Profile, Profile.id == Subscription.profile_id)
        .where(
            Subscription.workspace_id == workspace_id,
            Subscription.topic == "",
            Profile.merged_into_id.is_(None),
            _address_condition(Subscription.channel),
        )
        .group_by(Subscription.channel, Subscription.state)
    ).all()
    out: dict[str, dict[str, int]] = {}
    for channel, state, count in rows:
        out.setdefault(str(channel), {})[str(state)] = int(count)
    return out


def reachable_counts(db: Session, *, workspace_id: int, now: datetime) -> dict[str, int]:
    """Count live profiles with an address and a live channel-wide "subscribed" state, per channel."""
    rows = db.execute(
        select(Subscription.channel, func.count())
        .join(Profile, Profile.id == Subscription.profile_id)
        .where(
            Subscription.workspace_id == workspace_id,
            Subscription.topic == "",
            Subscription.state == "subscribed",
            or_(Subscription.paused_until.is_(None), Subscription.paused_until <= now),
            Profile.merged_into_id.is_(None),
            _address_condition(Subscription.channel),
        )
        .group_by(Subscription.channel)
    ).all()
    return {str(channel): int(count) for channel, count in rows}


def email_never_blocked(db: Session, *, workspace_id: int, now: datetime) -> int:
    """Count live profiles with an email whose email state neither refuses nor pauses marketing."""
    blocked = (
        select(Subscription.id)
        .where(
            Subscription.profile_id == Profile.id,
            Subscription.channel == "email",
            Subscription.topic == "",
            or_(
                Subscription.state.in_(("unsubscribed", "pending")),
                and_(Subscription.paused_until.is_not(None), Subscription.paused_until > now),
            ),
        )
        .exists()
    )
    return int(
        db.scalar(
            select(func.count()).where(
                Profile.workspace_id == workspace_id,
                Profile.merged_into_id.is_(None),
                Profile.email.is_not(None),
                ~blocked,
            )
        )
        or 0
    )
