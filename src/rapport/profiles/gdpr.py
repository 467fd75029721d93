"""GDPR: export everything held about a person (Art. 20) and erase it for good (Art. 17, R17).

Erasure deletes the profile, the profiles merged into it, their events, identities, trait history and
merge records (and whatever other domains registered through ``on_erase``: messages, consent), then keeps
one suppression row per identifier: ``sha256(workspace id, kind, normalised value)``. The processor and
the importer refuse to re-create anyone from a suppressed identifier. Both actions are audited with ids
and counts only, never the personal data itself (R26, R27).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.audit import service as audit_service
from rapport.collect import identity as ident
from rapport.collect import processor as collect_processor
from rapport.collect.processor import ProcessingHooks
from rapport.models import Suppression
from rapport.profiles import repository
from rapport.profiles import service as profiles_service
from rapport.profiles.schemas import ErasureRead, EventRead, IdentityRead, MergeRead, TraitChangeRead

ERASURE_REASON = "erasure"


def export_profile(
    db: Session,
    *,
    workspace_id: int,
    profile_id: int,
    actor: str,
    now: datetime,
    hooks: ProcessingHooks | None = None,
    ip: str | None = None,
) -> dict[str, Any]:
    """Return every row held about the person as JSON-able data and audit the export."""
    profile = profiles_service.read_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    pid = profile.id
    events = [
        EventRead.model_validate(e).model_dump(mode="json")
        for e in repository.iter_events(db, workspace_id=workspace_id, profile_id=pid)
    ]
    history = [
        TraitChangeRead.model_validate(t).model_dump(mode="json")
        for t in repository.all_trait_history(db, workspace_id=workspace_id, profile_id=pid)
    ]
    data: dict[str, Any] = {
        "exported_at": now.isoformat(),
        "workspace_id": workspace_id,
        "profile": profile.model_dump(mode="json", exclude={"identities", "merges", "requested_id"}),
        "identities": [IdentityRead.model_validate(i).model_dump(mode="json") for i in profile.identities],
        "merges": [MergeRead.model_validate(m).model_dump(mode="json") for m in profile.merges],
        "merged_profile_ids": repository.tombstones_of(db, workspace_id=workspace_id, profile_id=pid),
        "trait_history": history,
        "events": events,
    }
    for section, exporter in (hooks.exporters if hooks else {}).items():
        data[section] = exporter(db, workspace_id, pid)
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="profile.exported",
        target_type="profile",
        target_id=pid,
        details={"events": len(events), "identities": len(profile.identities), "trait_changes": len(history)},
        ip=ip,
    )
    return data


def suppress(db: Session, *, workspace_id: int, kind: str, value: str, reason: str) -> None:
    """Add a hashed suppression entry for one normalised identifier (idempotent)."""
    dialect = db.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.execute(
        make(Suppression)
        .values(
            workspace_id=workspace_id,
            kind=kind,
            value_hash=ident.suppression_hash(workspace_id, kind, value),
            reason=reason,
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "kind", "value_hash"])
    )


def erase_profile(
    db: Session,
    *,
    workspace_id: int,
    profile_id: int,
    actor: str,
    hooks: ProcessingHooks | None = None,
    ip: str | None = None,
) -> ErasureRead:
    """Delete everything about the person and suppress their identifiers; the caller commits."""
    collect_processor.lock_workspace(db, workspace_id, wait=True)
    profile = profiles_service.get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    pid = profile.id
    ids = [pid, *repository.tombstones_of(db, workspace_id=workspace_id, profile_id=pid)]
    identities = [
        (i.kind, i.value) for i in repository.identities(db, workspace_id=workspace_id, profile_id=pid)
    ]
    if profile.email:
        identities.append((ident.EMAIL, profile.email))
    if profile.phone:
        identities.append((ident.PHONE, profile.phone))
    unique = sorted(set(identities))
    for kind, value in unique:
        suppress(db, workspace_id=workspace_id, kind=kind, value=value, reason=ERASURE_REASON)
    for hook in hooks.on_erase if hooks else []:
        hook(db, workspace_id, ids)
    db.expunge(profile)
    deleted = repository.delete_person(db, workspace_id=workspace_id, profile_ids=ids)
    deleted["profiles"] = len(ids)
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="profile.erased",
        target_type="profile",
        target_id=pid,
        details={**deleted, "suppressed": len(unique)},
        ip=ip,
    )
    return ErasureRead(profile_id=pid, deleted=deleted, suppressed=len(unique))
