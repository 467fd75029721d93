"""Quarantined events (R4): list them, correct a payload, replay (re-validate, store, mark replayed).

Service functions take a session and flush; the HTTP routes under ``/api/v1/quarantine`` and the CLI
(``rapport events quarantine …``) own the transaction. Replay re-runs today's validation on the kept
payload with the original batch envelope and receive time, so a message fixed by hand, or one refused by a
rule that has since changed, is stored exactly as if it had been accepted the first time; a repeat of an
already stored messageId is ignored as usual (R1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.accounts.principal import Principal
from rapport.api.deps import DbSession, Offset, ReadDbSession, get_runtime, require_scope
from rapport.audit import service as audit_service
from rapport.collect import ingest
from rapport.collect.normalize import Envelope, Rejected, normalize
from rapport.collect.schemas import (
    PayloadUpdate,
    QuarantinedEventRead,
    ReplayRequest,
    ReplayResultRead,
    ReplaySummary,
)
from rapport.errors import NotFound, ValidationFailed
from rapport.kit.pagination import Page
from rapport.models import QuarantinedEvent
from rapport.runtime import Runtime


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """The outcome of replaying one quarantined event."""

    id: int
    status: str  # "stored" | "invalid" | "already_replayed"
    message_id: str | None = None
    reason: str | None = None


def list_quarantined(
    db: Session, *, workspace_id: int, page: Page, include_replayed: bool = False
) -> Sequence[QuarantinedEvent]:
    """Return the workspace's quarantined events, newest first (open ones only unless asked)."""
    stmt = select(QuarantinedEvent).where(QuarantinedEvent.workspace_id == workspace_id)
    if not include_replayed:
        stmt = stmt.where(QuarantinedEvent.replayed_at.is_(None))
    stmt = stmt.order_by(QuarantinedEvent.id.desc()).limit(page.limit).offset(page.offset)
    return db.scalars(stmt).all()


def get_quarantined(db: Session, *, workspace_id: int, quarantine_id: int) -> QuarantinedEvent:
    """Return one quarantined event of the workspace or raise NotFound."""
    row = db.scalar(
        select(QuarantinedEvent).where(
            QuarantinedEvent.workspace_id == workspace_id, QuarantinedEvent.id == quarantine_id
        )
    )
    if row is None:
        raise NotFound("quarantined event not found")
    return row


def payload_of(row: QuarantinedEvent) -> Any:
    """Return the kept payload as JSON (or the raw text when it is not JSON)."""
    try:
        return json.loads(row.payload)
    except ValueError:
        return row.payload


def update_payload(
    db: Session, *, workspace_id: int, quarantine_id: int, payload: dict[str, Any], actor: str
) -> QuarantinedEvent:
    """Replace a quarantined payload with a corrected one (audited); replayed events cannot change."""
    row = get_quarantined(db, workspace_id=workspace_id, quarantine_id=quarantine_id)
    if row.replayed_at is not None:
        raise ValidationFailed("this event was already replayed and stored; it cannot change")
    row.payload = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="quarantine.payload_edited",
        target_type="quarantined_event",
        target_id=row.id,
    )
    return row


def replay_one(db: Session, row: QuarantinedEvent, *, principal: Principal, now: datetime) -> ReplayResult:
    """Re-validate one quarantined event; store it and mark it replayed, or record why it still fails."""
    if row.replayed_at is not None:
        return ReplayResult(row.id, "already_replayed", reason=row.replay_result)
    details: dict[str, Any] = row.details if isinstance(row.details, dict) else {}
    sender = details.get("sender")
    sender = sender if isinstance(sender, dict) else {}
    envelope_doc = details.get("envelope")
    envelope = None
    if isinstance(envelope_doc, dict):
        envelope = Envelope(sent_at=envelope_doc.get("sentAt"), context=envelope_doc.get("context") or None)
    may_grant = bool(sender.get("may_grant")) and ingest.may_grant_consent(principal)
    result = normalize(
        payload_of(row),
        received_at=row.received_at,
        route_type=details.get("route_type"),
        envelope=envelope,
        may_grant_consent=may_grant,
        source=row.source,
    )
    if isinstance(result, Rejected):
        row.reason = result.reason[:500]
        row.details = {**details, "code": result.code, "errors": [e.as_dict() for e in result.errors]}
        row.replay_result = f"still invalid at {now.isoformat(timespec='seconds')}: {result.reason}"[:500]
        db.flush()
        return ReplayResult(row.id, "invalid", message_id=result.message_id, reason=result.reason)
    result.row["workspace_id"] = row.workspace_id
    result.row["extra"] = {**result.row["extra"], "_replayed_from_quarantine": row.id}
    ingest.append_events(db, [result.row])
    if result.refused_grants:
        entry = ingest.consent_audit(principal, result, workspace_id=row.workspace_id)
        entry.pop("_request_id", None)
        audit_service.record(db, **entry)
    row.replayed_at = now
    row.replay_result = f"stored as {result.message_id}"[:500]
    db.flush()
    return ReplayResult(row.id, "stored", message_id=result.message_id)


def replay(
    db: Session,
    *,
    workspace_id: int,
    principal: Principal,
    now: datetime,
    ids: Sequence[int] | None = None,
    limit: int = 1000,
) -> list[ReplayResult]:
    """Replay the given quarantined events, or every open one (oldest first, up to ``limit``)."""
    stmt = select(QuarantinedEvent).where(QuarantinedEvent.workspace_id == workspace_id)
    if ids is not None:
        stmt = stmt.where(QuarantinedEvent.id.in_(list(ids)))
    else:
        stmt = stmt.where(QuarantinedEvent.replayed_at.is_(None))
    rows = db.scalars(stmt.order_by(QuarantinedEvent.id).limit(limit)).all()
    if ids is not None:
        missing = sorted(set(ids) - {r.id for r in rows})
        if missing:
            raise NotFound(f"quarantined events not found: {', '.join(map(str, missing[:20]))}")
    results = [replay_one(db, row, principal=principal, now=now) for row in rows]
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=principal.actor,
        action="quarantine.replayed",
        target_type="quarantined_event",
        details={
            "stored": sum(r.status == "stored" for r in results),
            "invalid": sum(r.status == "invalid" for r in results),
            "ids": [r.id for r in results][:100],
        },
    )
    return results


def summarize(results: Sequence[ReplayResult]) -> ReplaySummary:
    """Count a replay's outcomes for the API and CLI."""
    return ReplaySummary(
        stored=sum(r.status == "stored" for r in results),
        invalid=sum(r.status == "invalid" for r in results),
        skipped=sum(r.status == "already_replayed" for r in results),
        results=[
            ReplayResultRead(id=r.id, status=r.status, message_id=r.message_id, reason=r.reason)
            for r in results
        ],
    )


def _read(row: QuarantinedEvent) -> QuarantinedEventRead:
    return QuarantinedEventRead(
        id=row.id,
        payload=payload_of(row),
        reason=row.reason,
        details=row.details,
        source=row.source,
        received_at=row.received_at,
        replayed_at=row.replayed_at,
        replay_result=row.replay_result,
    )


router = APIRouter(prefix="/api/v1/quarantine", tags=["quarantine"])

Reader = Annotated[Principal, Depends(require_scope("events:read"))]
Writer = Annotated[Principal, Depends(require_scope("events:write"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@router.get("", response_model=list[QuarantinedEventRead])
def list_route(
    principal: Reader,
    db: ReadDbSession,
    include_replayed: Annotated[bool, Query()] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> object:
    """List quarantined events, newest first; open ones only unless ``include_replayed``."""
    rows = list_quarantined(
        db,
        workspace_id=principal.workspace_id,
        page=Page(limit=limit, offset=offset),
        include_replayed=include_replayed,
    )
    return [_read(row) for row in rows]


@router.get("/{quarantine_id}", response_model=QuarantinedEventRead)
def read_route(quarantine_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one quarantined event with its payload and reason."""
    return _read(get_quarantined(db, workspace_id=principal.workspace_id, quarantine_id=quarantine_id))


@router.put("/{quarantine_id}/payload", response_model=QuarantinedEventRead)
def update_route(quarantine_id: int, body: PayloadUpdate, principal: Writer, db: DbSession) -> object:
    """Replace the payload with a corrected message (then replay it)."""
    row = update_payload(
        db,
        workspace_id=principal.workspace_id,
        quarantine_id=quarantine_id,
        payload=body.payload,
        actor=principal.actor,
    )
    db.commit()
    return _read(row)


@router.post("/{quarantine_id}/replay", response_model=ReplaySummary)
def replay_one_route(quarantine_id: int, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
    """Re-validate and store one quarantined event."""
    results = replay(
        db,
        workspace_id=principal.workspace_id,
        principal=principal,
        now=runtime.clock.now(),
        ids=[quarantine_id],
    )
    db.commit()
    return summarize(results)


@router.post("/replay", response_model=ReplaySummary)
def replay_route(body: ReplayRequest, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
    """Re-validate and store the given quarantined events, or every open one."""
    results = replay(
        db,
        workspace_id=principal.workspace_id,
        principal=principal,
        now=runtime.clock.now(),
        ids=body.ids,
        limit=body.limit,
    )
    db.commit()
    return summarize(results)
