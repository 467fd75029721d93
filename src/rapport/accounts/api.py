"""HTTP routes for the workspace, its API keys and its audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from rapport.accounts import service
from rapport.accounts.principal import Principal
from rapport.accounts.schemas import AuditRead, KeyCreate, KeyIssued, KeyRead, WorkspaceRead
from rapport.api.deps import DbSession, Offset, ReadDbSession, get_runtime, require_scope
from rapport.audit import service as audit_service
from rapport.kit.pagination import Page
from rapport.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["workspace"])

Admin = Annotated[Principal, Depends(require_scope("admin"))]
Anyone = Annotated[Principal, Depends(require_scope("any"))]


@router.get("/workspace", response_model=WorkspaceRead)
def read_workspace(principal: Anyone, db: ReadDbSession) -> object:
    """Return the workspace the key or session belongs to."""
    return service.get_workspace(db, principal.workspace_id)


@router.get("/keys", response_model=list[KeyRead])
def list_keys(
    principal: Admin, db: ReadDbSession, include_revoked: Annotated[bool, Query()] = False
) -> object:
    """List the workspace's keys (values are never shown again)."""
    return service.list_keys(db, workspace_id=principal.workspace_id, include_revoked=include_revoked)


@router.post("/keys", response_model=KeyIssued, status_code=201)
def create_key(body: KeyCreate, principal: Admin, db: DbSession) -> object:
    """Issue a key; the answer carries its value, shown this once."""
    issued = service.create_key(
        db,
        workspace_id=principal.workspace_id,
        kind=body.kind,
        name=body.name,
        scopes=body.scopes,
        actor=principal.actor,
    )
    db.commit()
    return KeyIssued.model_validate({**KeyRead.model_validate(issued.key).model_dump(), "key": issued.plain})


@router.get("/keys/{key_id}", response_model=KeyRead)
def read_key(key_id: int, principal: Admin, db: ReadDbSession) -> object:
    """Return one key's metadata."""
    return service.get_key(db, workspace_id=principal.workspace_id, key_id=key_id)


@router.delete("/keys/{key_id}", response_model=KeyRead)
def revoke_key(
    key_id: int, principal: Admin, db: DbSession, runtime: Annotated[Runtime, Depends(get_runtime)]
) -> object:
    """Revoke a key; it stops working at once."""
    key = service.revoke_key(
        db, workspace_id=principal.workspace_id, key_id=key_id, actor=principal.actor, now=runtime.clock.now()
    )
    db.commit()
    return key


@router.get("/audit", response_model=list[AuditRead])
def list_audit(
    principal: Admin,
    db: ReadDbSession,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> object:
    """List the workspace's audit entries, newest first."""
    return audit_service.list_entries(
        db, workspace_id=principal.workspace_id, page=Page(limit=limit, offset=offset), action=action
    )
