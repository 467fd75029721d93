"""Liveness and readiness: /healthz answers 200 only when the database answers and is migrated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from rapport import __version__
from rapport.api.deps import get_runtime
from rapport.db import migrate
from rapport.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(runtime: Annotated[Runtime, Depends(get_runtime)]) -> JSONResponse:
    """Check the database connection and schema revision."""
    try:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = migrate.current_revision(runtime.engine)
    except Exception:
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "version": __version__}, status_code=503
        )
    head = migrate.head_revision()
    ok = revision == head
    return JSONResponse(
        {
            "status": "ok" if ok else "degraded",
            "database": runtime.engine.dialect.name,
            "schema": revision,
            "schema_head": head,
            "version": __version__,
        },
        status_code=200 if ok else 503,
    )
