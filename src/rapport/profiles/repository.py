"""Every query of the profiles domain; all scoped to one workspace (R20)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from rapport.kit.pagination import Page
from rapport.models import Event, Identity, Profile, ProfileMerge, TraitChange


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
        stmt = stmt.where(func.lower(Profile.name).like(_prefix(name.lower()), escape="\\"))
    if q is not None:
        pattern = _prefix(q.lower())
        stmt = stmt.where(
            or_(
                Profile.email.like(pattern, escape="\\"),
                Profile.phone.like(_prefix(q), escape="\\"),
                func.lower(Profile.name).like(pattern, escape="\\"),
            )
        )
    return db.scalars(stmt.order_by(Profile.id).limit(page.limit).offset(page.offset)).all()


def _prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def identities(db: Session, *, workspace_id: int, profile_id: int) -> Sequence[Identity]:
    """Return a profile's identifiers, oldest first."""
    return db.scalars(
        select(Identity)
        .where(Identity.workspace_id == workspace_id, Identity.profile_id == profile_id)
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
        TraitChange.workspace_id == workspace_id, TraitChange.profile_id == profile_id
    )
    if name is not None:
        stmt = stmt.where(TraitChange.name == name)
    stmt = stmt.order_by(TraitChange.set_at.desc(), TraitChange.id.desc())
    return db.scalars(stmt.limit(page.limit).offset(page.offset)).all()


def all_trait_history(db: Session, *, workspace_id: int, profile_id: int) -> Sequence[TraitChange]:
    """Return every trait change of a profile, oldest first (exports)."""
    return db.scalars(
        select(TraitChange)
        .where(TraitChange.workspace_id == workspace_id, TraitChange.profile_id == profile_id)
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
        ("events", delete(Event).where(Event.workspace_id == workspace_id, Event.profile_id.in_(ids))),
        (
            "trait_changes",
            delete(TraitChange).where(
                TraitChange.workspace_id == workspace_id, TraitChange.profile_id.in_(ids)
            ),
        ),
        (
            "identities",
            delete(Identity).where(Identity.workspace_id == workspace_id, Identity.profile_id.in_(ids)),
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
    db.execute(
        delete(Profile)
        .where(Profile.workspace_id == workspace_id, Profile.merged_into_id.in_(ids))
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
