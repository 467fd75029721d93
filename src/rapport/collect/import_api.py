"""HTTP routes under /api/v1/imports: upload a CSV/JSONL file, follow its progress, fetch refused rows."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel

from rapport.accounts.principal import Principal
from rapport.api.deps import DbSession, ReadDbSession, get_runtime, require_scope
from rapport.collect import import_tasks
from rapport.errors import NotFound, ValidationFailed
from rapport.runtime import Runtime

router = APIRouter(prefix="/api/v1/imports", tags=["imports"])

Writer = Annotated[Principal, Depends(require_scope("profiles:write"))]


class ImportRead(BaseModel):
    """An import: its job status, rows read so far and, when done, the report."""

    id: int
    status: str
    kind: str | None
    filename: str | None
    created_at: datetime
    finished_at: datetime | None
    rows: int
    report: dict[str, Any] | None
    error: str | None


@router.post("", response_model=ImportRead, status_code=202)
def create_import(
    principal: Writer,
    db: DbSession,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    file: Annotated[UploadFile, File()],
    kind: Annotated[str, Form()],
    format: Annotated[str | None, Form()] = None,
    mapping: Annotated[str | None, Form(description='JSON object {"csv_col": "field"}')] = None,
) -> object:
    """Accept a file of profiles or events; the import runs in the background."""
    parsed: dict[str, str] | None = None
    if mapping:
        try:
            loaded = json.loads(mapping)
        except json.JSONDecodeError:
            raise ValidationFailed("mapping must be a JSON object") from None
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise ValidationFailed("mapping must be a JSON object of column → field names")
        parsed = {str(k): v for k, v in loaded.items()}
    job_id = import_tasks.start_import(
        db,
        runtime,
        workspace_id=principal.workspace_id,
        kind=kind,
        filename=file.filename or "upload",
        stream=file.file,
        fmt=format,
        mapping=parsed,
        actor=principal.actor,
    )
    db.commit()
    job = import_tasks.get_import(db, workspace_id=principal.workspace_id, job_id=job_id)
    return import_tasks.describe(job)


@router.get("/{import_id}", response_model=ImportRead)
def read_import(import_id: int, principal: Writer, db: ReadDbSession) -> object:
    """Return an import's status and progress, or its report once done."""
    job = import_tasks.get_import(db, workspace_id=principal.workspace_id, job_id=import_id)
    return import_tasks.describe(job)


@router.get("/{import_id}/errors")
def import_errors(import_id: int, principal: Writer, db: ReadDbSession) -> FileResponse:
    """Return the refused rows as CSV (row, column, reason)."""
    job = import_tasks.get_import(db, workspace_id=principal.workspace_id, job_id=import_id)
    path = Path(job.payload.get("errors_path", ""))
    if not path.is_file():
        raise NotFound("no error report for this import (yet)")
    return FileResponse(path, media_type="text/csv", filename=f"import-{import_id}-errors.csv")
