"""Profile reads: by id or any identifier, search, timeline, traits with history, merges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from rapport.collect import identity as ident
from rapport.collect import processor as collect_processor
from rapport.errors import NotFound, ValidationFailed
from rapport.kit.pagination import Page
from rapport.models import Event, Profile, TraitChange
from rapport.process import score_repository, traits_service
from rapport.profiles import repository
from rapport.profiles.schemas import IdentityRead, MergeRead, ProfileRead, TraitsRead

#: Identifier kinds accepted by the lookup route (plus ``external:<system>``).
LOOKUP_KINDS = (ident.USER_ID, ident.ANONYMOUS_ID, ident.EMAIL, ident.PHONE, ident.DEVICE_TOKEN)
_MAX_HOPS = 16


def get_profile(db: Session, *, workspace_id: int, profile_id: int) -> Profile:
    """Return a live profile, following merges from a tombstone to its survivor; NotFound otherwise."""
    profile = repository.get(db, workspace_id=workspace_id, profile_id=profile_id)
    hops = 0
    while profile is not None and profile.merged_into_id is not None and hops < _MAX_HOPS:
        profile = repository.get(db, workspace_id=workspace_id, profile_id=profile.merged_into_id)
        hops += 1
    if profile is None or profile.merged_into_id is not None:
        raise NotFound("no such profile")
    return profile


def read_profile(
    db: Session, *, workspace_id: int, profile_id: int, now: datetime | None = None
) -> ProfileRead:
    """Return a profile with its identifiers and merges (the survivor when ``profile_id`` was merged);
    with ``now``, also its computed traits (exact at ``now``) and scores."""
    profile = get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    computed: dict[str, Any] = {}
    if now is not None:
        computed = dict(score_repository.scores_of(db, workspace_id, [profile.id]).get(profile.id, {}))
        computed.update({k: v for k, v in (profile.computed or {}).items() if not k.startswith("_")})
        computed.update(
            traits_service.read_computed(db, workspace_id, [profile.id], None, now).get(profile.id, {})
        )
    identities = repository.identities(db, workspace_id=workspace_id, profile_id=profile.id)
    merges = repository.merges(db, workspace_id=workspace_id, profile_id=profile.id)
    return ProfileRead(
        id=profile.id,
        email=profile.email,
        phone=profile.phone,
        name=profile.name,
        first_seen_at=profile.first_seen_at,
        last_seen_at=profile.last_seen_at,
        created_at=profile.created_at,
        timezone=profile.timezone,
        timezone_source=profile.timezone_source,
        traits=profile.traits or {},
        trait_times=profile.trait_times or {},
        updated_at=profile.updated_at,
        identities=[IdentityRead.model_validate(i) for i in identities],
        merges=[MergeRead.model_validate(m) for m in merges],
        computed=computed,
        requested_id=profile_id if profile.id != profile_id else None,
    )


def find_profile_id(db: Session, *, workspace_id: int, kind: str, value: str) -> int:
    """Return the id of the profile holding an identifier (normalised first); NotFound otherwise."""
    if kind not in LOOKUP_KINDS and not kind.startswith(ident.EXTERNAL + ":"):
        raise ValidationFailed(f"unknown identifier kind; use one of {', '.join(LOOKUP_KINDS)}, external:<x>")
    rules = collect_processor.rules_for(db, workspace_id)
    try:
        normalised = ident.normalize(kind, value, rules)
    except ident.InvalidIdentifier as exc:
        raise ValidationFailed(str(exc)) from None
    owner = None
    if normalised is not None:
        owner = repository.owner_of(db, workspace_id=workspace_id, kind=kind, value=normalised)
    if owner is None:
        raise NotFound("no profile has this identifier")
    return owner


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
    """Search live profiles by exact email or phone (normalised), name prefix, or ``q`` on any of them."""
    rules = collect_processor.rules_for(db, workspace_id)
    if email is not None:
        try:
            email = ident.normalize_email(email)
        except ident.InvalidIdentifier:
            email = email.strip().lower()
    if phone is not None:
        try:
            phone = ident.normalize_phone(phone, rules.default_region)
        except ident.InvalidIdentifier:
            phone = phone.strip()
    return repository.search(
        db, workspace_id=workspace_id, page=page, email=email, phone=phone, name=name, q=q
    )


def timeline(
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
    """Return a profile's events, newest first, filtered."""
    profile = get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    return repository.events(
        db,
        workspace_id=workspace_id,
        profile_id=profile.id,
        page=page,
        types=types,
        channels=channels,
        name=name,
        since=since,
        until=until,
    )


def traits(db: Session, *, workspace_id: int, profile_id: int) -> TraitsRead:
    """Return a profile's current traits and their times."""
    profile = get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    return TraitsRead(
        profile_id=profile.id, traits=profile.traits or {}, trait_times=profile.trait_times or {}
    )


def trait_history(
    db: Session, *, workspace_id: int, profile_id: int, page: Page, name: str | None = None
) -> Sequence[TraitChange]:
    """Return a profile's trait changes, newest first (one trait with ``name``)."""
    profile = get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    return repository.trait_history(
        db, workspace_id=workspace_id, profile_id=profile.id, page=page, name=name
    )


def overview(db: Session, *, workspace_id: int) -> dict[str, int]:
    """Count the workspace's live profiles, and those with an email address and with a phone number."""
    return repository.count_overview(db, workspace_id=workspace_id)


def segment_memberships(db: Session, *, workspace_id: int, profile_id: int) -> list[dict[str, Any]]:
    """Return the live segments a profile is in: ``{"id", "name", "entered_at"}``, by name."""
    profile = get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    rows = repository.segment_memberships(db, workspace_id=workspace_id, profile_id=profile.id)
    return [{"id": r.id, "name": r.name, "entered_at": r.entered_at} for r in rows]


def timeline_channels(db: Session, *, workspace_id: int, profile_id: int) -> list[str]:
    """Return the channels a profile's events came through (for the timeline's filter)."""
    profile = get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    return repository.event_channels(db, workspace_id=workspace_id, profile_id=profile.id)
