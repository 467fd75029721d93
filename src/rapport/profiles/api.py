"""HTTP routes under /api/v1/profiles: read by id or identifier, search, timeline, traits, GDPR."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from rapport.accounts.principal import Principal
from rapport.api.deps import DbSession, Offset, ReadDbSession, client_ip, get_runtime, require_scope
from rapport.collect.processor import hooks_for
from rapport.kit.bounds import Moment
from rapport.kit.pagination import Page
from rapport.profiles import gdpr, service
from rapport.profiles.schemas import (
    ErasureRead,
    EventRead,
    ProfileRead,
    ProfileSummary,
    TraitChangeRead,
    TraitsRead,
)
from rapport.runtime import Runtime

router = APIRouter(prefix="/api/v1/profiles", tags=["profiles"])

Reader = Annotated[Principal, Depends(require_scope("profiles:read"))]
Writer = Annotated[Principal, Depends(require_scope("profiles:write"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("", response_model=list[ProfileSummary])
def search_profiles(
    principal: Reader,
    db: ReadDbSession,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    q: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> object:
    """Search profiles by email or phone (exact, normalised), name prefix, or ``q`` on any of them."""
    return service.search(
        db,
        workspace_id=principal.workspace_id,
        page=Page(limit=limit, offset=offset),
        email=email,
        phone=phone,
        name=name,
        q=q,
    )


@router.get("/lookup", response_model=ProfileRead)
def lookup_profile(
    principal: Reader,
    db: ReadDbSession,
    runtime: RuntimeDep,
    kind: Annotated[str, Query()],
    value: Annotated[str, Query()],
) -> object:
    """Return the profile holding an identifier (user_id, anonymous_id, email, phone, external:<x>)."""
    pid = service.find_profile_id(db, workspace_id=principal.workspace_id, kind=kind, value=value)
    return service.read_profile(
        db, workspace_id=principal.workspace_id, profile_id=pid, now=runtime.clock.now()
    )


@router.get("/{profile_id}", response_model=ProfileRead)
def read_profile(profile_id: int, principal: Reader, db: ReadDbSession, runtime: RuntimeDep) -> object:
    """Return a profile with traits, computed traits and scores, identifiers and merges (a merged id
    answers with its survivor)."""
    return service.read_profile(
        db, workspace_id=principal.workspace_id, profile_id=profile_id, now=runtime.clock.now()
    )


@router.get("/{profile_id}/events", response_model=list[EventRead])
def profile_events(
    profile_id: int,
    principal: Reader,
    db: ReadDbSession,
    type: Annotated[list[str] | None, Query()] = None,
    channel: Annotated[list[str] | None, Query()] = None,
    event: str | None = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> object:
    """Return the profile's timeline, newest first; filter by type, channel, event name, [since, until)."""
    return service.timeline(
        db,
        workspace_id=principal.workspace_id,
        profile_id=profile_id,
        page=Page(limit=limit, offset=offset),
        types=type or (),
        channels=channel or (),
        name=event,
        since=since,
        until=until,
    )


@router.get("/{profile_id}/traits", response_model=TraitsRead)
def profile_traits(profile_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return the current traits and when each was set."""
    return service.traits(db, workspace_id=principal.workspace_id, profile_id=profile_id)


@router.get("/{profile_id}/traits/history", response_model=list[TraitChangeRead])
def profile_trait_history(
    profile_id: int,
    principal: Reader,
    db: ReadDbSession,
    name: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """Return trait changes, newest first (one trait with ``name``)."""
    return service.trait_history(
        db,
        workspace_id=principal.workspace_id,
        profile_id=profile_id,
        page=Page(limit=limit, offset=offset),
        name=name,
    )


@router.get("/{profile_id}/export")
def export_profile(
    profile_id: int, principal: Writer, db: DbSession, runtime: RuntimeDep, request: Request
) -> dict[str, Any]:
    """Return everything held about the person as JSON (GDPR Art. 20); audited."""
    data = gdpr.export_profile(
        db,
        workspace_id=principal.workspace_id,
        profile_id=profile_id,
        actor=principal.actor,
        now=runtime.clock.now(),
        hooks=hooks_for(runtime),
        ip=client_ip(request),
    )
    db.commit()
    return data


@router.delete("/{profile_id}", response_model=ErasureRead)
def erase_profile(
    profile_id: int, principal: Writer, db: DbSession, runtime: RuntimeDep, request: Request
) -> object:
    """Erase the person (GDPR Art. 17): delete their data and block re-creation; audited."""
    result = gdpr.erase_profile(
        db,
        workspace_id=principal.workspace_id,
        profile_id=profile_id,
        actor=principal.actor,
        hooks=hooks_for(runtime),
        ip=client_ip(request),
    )
    db.commit()
    return result
