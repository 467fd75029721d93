"""How consent joins the processing loop: statements in events, merges, GDPR export.

Registered at the composition root (``create_app``) on the collect processor's hooks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.collect.processor import BatchApplied, ProcessingHooks
from rapport.consent import service, tasks
from rapport.consent.schemas import ConsentRecordRead, SubscriptionRead
from rapport.kit.clock import utcnow
from rapport.models import Event
from rapport.worker.runner import HandlerRegistry

WITHDRAWALS = "_consent_withdrawals"
GRANTS = "_consent_grants"


def apply_event_statements(batch: BatchApplied) -> None:
    """Apply the consent statements the ingest normaliser found in this batch's events.

    Withdrawals apply whoever sent them; grants are present only when the sender was allowed to grant
    (a secret key with consent:write — never a write key, R16).
    """
    if not batch.event_ids:
        return
    rows: list[tuple[Any, int | None]]
    if batch.linked is not None:  # the rows the processor applied (no merge moved them): no read back
        rows = list(batch.linked)
    else:
        rows = [
            (row, row.profile_id)
            for row in batch.db.execute(
                select(Event.id, Event.profile_id, Event.extra, Event.context, Event.source).where(
                    Event.workspace_id == batch.workspace_id, Event.id.in_(batch.event_ids)
                )
            )
        ]
    for row, profile_id in rows:
        extra = row.extra if isinstance(row.extra, dict) else {}
        if profile_id is None or not (extra.get(WITHDRAWALS) or extra.get(GRANTS)):
            continue
        ip = row.context.get("ip") if isinstance(row.context, dict) else None
        service.apply_signals(
            batch.db,
            workspace_id=batch.workspace_id,
            profile_id=profile_id,
            withdrawals=extra.get(WITHDRAWALS) or [],
            grants=extra.get(GRANTS) or [],
            source=f"event:{row.source}",
            actor=f"event:{row.id}",
            now=batch.runtime.clock.now(),
            ip=str(ip)[:64] if ip else None,
        )


def fold_on_merge(db: Session, workspace_id: int, survivor_id: int, merged_id: int) -> None:
    """Move the merged-away profile's subscriptions to the survivor."""
    service.fold_merge(
        db, workspace_id=workspace_id, survivor_id=survivor_id, merged_id=merged_id, now=utcnow()
    )


def export_consent(db: Session, workspace_id: int, profile_id: int) -> dict[str, Any]:
    """The consent section of a GDPR export."""
    subs = service.list_subscriptions(db, workspace_id=workspace_id, profile_id=profile_id)
    log = service.list_log(db, workspace_id=workspace_id, profile_id=profile_id, limit=100_000)
    return {
        "subscriptions": [SubscriptionRead.model_validate(s).model_dump(mode="json") for s in subs],
        "log": [ConsentRecordRead.model_validate(r).model_dump(mode="json") for r in log],
    }


def register(hooks: ProcessingHooks) -> None:
    """Register consent's hooks on the processor."""
    hooks.after_apply.append(apply_event_statements)
    hooks.on_merge.append(fold_on_merge)
    hooks.exporters["consent"] = export_consent


def register_jobs(registry: HandlerRegistry) -> None:
    """Register consent's background jobs (the double opt-in confirmation email)."""
    registry.register(tasks.JOB_KIND, tasks.run_send_confirmation)
