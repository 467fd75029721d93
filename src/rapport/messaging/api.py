"""HTTP routes: send one message (idempotent), read messages."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from rapport.accounts.principal import Principal
from rapport.api import idempotency
from rapport.api.deps import DbSession, Offset, ReadDbSession, get_runtime, require_scope
from rapport.db.base import column_length
from rapport.errors import NotFound
from rapport.messaging import service
from rapport.messaging.schemas import MessageRead, MessageSend
from rapport.models import Identity, Message, Profile
from rapport.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["messages"])

Sender = Annotated[Principal, Depends(require_scope("messages:send"))]
Reader = Annotated[Principal, Depends(require_scope("profiles:read"))]


#: The length of ``messages.dedupe_key``.
DEDUPE_KEY_MAX = column_length(Message.__table__.c.dedupe_key)


@router.post("/messages", status_code=202, response_model=MessageRead)
def send_message(
    body: MessageSend,
    principal: Sender,
    db: DbSession,
    request: Request,
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> JSONResponse:
    """Queue one message for one person; with an Idempotency-Key the same request never sends twice (R5)."""
    key = request.headers.get(idempotency.HEADER)

    def effect() -> tuple[int, dict[str, Any]]:
        profile_id = body.profile_id
        if body.user_id is not None:
            profile_id = db.scalar(
                select(Identity.profile_id).where(
                    Identity.workspace_id == principal.workspace_id,
                    Identity.kind == "user_id",
                    Identity.value == body.user_id,
                )
            )
        if profile_id is None or not _owned(db, principal.workspace_id, profile_id):
            raise NotFound("profile not found")
        message = service.enqueue(
            db,
            workspace_id=principal.workspace_id,
            profile_id=profile_id,
            channel=body.channel,
            content=body.content(),
            kind=body.kind,
            topic=body.topic,
            priority=body.priority,
            run_at=body.send_at,
            now=runtime.clock.now(),
            dedupe_key=api_dedupe_key(key),
        )
        assert message is not None
        return 202, MessageRead.model_validate(message).model_dump(mode="json")

    return idempotency.run(
        request, db, workspace_id=principal.workspace_id, body=body.model_dump(mode="json"), effect=effect
    )


def api_dedupe_key(idempotency_key: str | None) -> str:
    """The outbox dedupe key of a message sent through the API: ``api:`` and the Idempotency-Key (a fresh
    one without), or ``api:sha256:`` and its digest when that would not fit the column (a key may be 200
    characters long; the column holds 200): never cut, so two keys cannot collide."""
    key = (idempotency_key or "").strip() or uuid.uuid4().hex
    found = f"api:{key}"
    if len(found) <= DEDUPE_KEY_MAX:
        return found
    return f"api:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _owned(db: DbSession, workspace_id: int, profile_id: int) -> bool:
    return (
        db.scalar(select(Profile.id).where(Profile.workspace_id == workspace_id, Profile.id == profile_id))
        is not None
    )


@router.get("/messages/{message_pk}", response_model=MessageRead)
def read_message(message_pk: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one message with its delivery status."""
    return service.get_message(db, workspace_id=principal.workspace_id, message_pk=message_pk)


@router.get("/profiles/{profile_id}/messages", response_model=list[MessageRead])
def list_profile_messages(
    profile_id: int,
    principal: Reader,
    db: ReadDbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> object:
    """List the messages a profile was sent or skipped for, newest first."""
    if not _owned(db, principal.workspace_id, profile_id):
        raise NotFound("profile not found")
    return service.list_for_profile(
        db, workspace_id=principal.workspace_id, profile_id=profile_id, limit=limit, offset=offset
    )
