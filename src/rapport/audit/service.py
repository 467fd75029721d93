"""Record and read audit entries: consent changes, exports, erasures, keys, roles, template edits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.kit.pagination import Page
from rapport.kit.requestctx import current_request_id
from rapport.models import AuditEntry


def record(
    db: Session,
    *,
    workspace_id: int | None,
    actor: str,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append one entry; the caller's transaction commits it together with the change it describes."""
    entry = AuditEntry(
        workspace_id=workspace_id,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
        ip=ip,
        request_id=current_request_id(),
    )
    db.add(entry)
    db.flush()
    return entry


def list_entries(
    db: Session, *, workspace_id: int, page: Page, action: str | None = None
) -> Sequence[AuditEntry]:
    """Return the workspace's entries, newest first."""
    stmt = select(AuditEntry).where(AuditEntry.workspace_id == workspace_id)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    stmt = stmt.order_by(AuditEntry.id.desc()).limit(page.limit).offset(page.offset)
    return db.scalars(stmt).all()
