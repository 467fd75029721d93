"""Idempotency keys for management calls with effects (R5), the way Stripe does them.

A client sends ``Idempotency-Key: <key>``. The first request reserves the key (committed at once), runs the
effect, and saves its answer in the same transaction as the effect. A repeat with the same body gets the
saved answer (``Idempotent-Replayed: true``); a repeat with another body gets 422; a repeat while the first
is still running gets 409. A reservation whose request died is taken over after ``STALE_AFTER``.

Example::

    @router.post("/imports")
    def start_import(body: ImportCreate, principal: Writer, db: DbSession, request: Request) -> JSONResponse:
        def effect() -> tuple[int, dict[str, Any]]:
            job = import_service.start(db, ...)
            return 202, ImportRead.model_validate(job).model_dump(mode="json")

        return idempotency.run(request, db, workspace_id=principal.workspace_id,
                               body=body.model_dump(mode="json"), effect=effect)

Never use it where the answer carries a secret (it is stored): key creation is not idempotent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.errors import BadRequest, Conflict, Unprocessable
from rapport.models import IdempotencyRecord
from rapport.runtime import Runtime

HEADER = "idempotency-key"
STALE_AFTER = timedelta(minutes=2)
MAX_KEY_LENGTH = 200

Effect = Callable[[], tuple[int, dict[str, Any]]]


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """Return a stable hash of what a request asks for."""
    canonical = json.dumps(
        {"m": method, "p": path, "b": body}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _reserve(runtime: Runtime, *, workspace_id: int, key: str, fingerprint: str) -> IdempotencyRecord | None:
    """Reserve ``key`` in its own committed transaction; return the existing record when it was taken."""
    now = runtime.clock.now()
    with runtime.sessions() as db:
        insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
        stmt = (
            insert(IdempotencyRecord)
            .values(workspace_id=workspace_id, key=key, request_hash=fingerprint, created_at=now)
            .on_conflict_do_nothing(index_elements=["workspace_id", "key"])
            .returning(IdempotencyRecord.id)
        )
        if db.execute(stmt).scalar_one_or_none() is not None:
            db.commit()
            return None
        # Take over a reservation whose request died before finishing.
        taken = db.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.workspace_id == workspace_id,
                IdempotencyRecord.key == key,
                and_(
                    IdempotencyRecord.status_code.is_(None), IdempotencyRecord.created_at < now - STALE_AFTER
                ),
            )
            .values(request_hash=fingerprint, created_at=now)
        )
        if getattr(taken, "rowcount", 0):
            db.commit()
            return None
        existing = db.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.workspace_id == workspace_id, IdempotencyRecord.key == key
            )
        )
        db.commit()
        return existing


def run(request: Request, db: Session, *, workspace_id: int, body: Any, effect: Effect) -> JSONResponse:
    """Run ``effect`` once per Idempotency-Key and commit ``db``; without the header, just run and commit."""
    key = request.headers.get(HEADER)
    if key is None:
        status, payload = effect()
        db.commit()
        return JSONResponse(payload, status_code=status)
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters")
    runtime: Runtime = request.app.state.runtime
    fingerprint = request_fingerprint(request.method, request.url.path, body)
    existing = _reserve(runtime, workspace_id=workspace_id, key=key, fingerprint=fingerprint)
    if existing is not None:
        if existing.request_hash != fingerprint:
            raise Unprocessable(
                "this Idempotency-Key was used with a different request", code="idempotency_mismatch"
            )
        if existing.status_code is None:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress", code="idempotency_in_progress"
            )
        return JSONResponse(
            existing.response, status_code=existing.status_code, headers={"Idempotent-Replayed": "true"}
        )
    try:
        status, payload = effect()
        db.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.workspace_id == workspace_id, IdempotencyRecord.key == key)
            .values(status_code=status, response=payload)
        )
        db.commit()
    except Exception:
        db.rollback()
        with runtime.sessions() as cleanup:
            cleanup.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.workspace_id == workspace_id,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.status_code.is_(None),
                )
            )
            cleanup.commit()
        raise
    return JSONResponse(payload, status_code=status)
