"""Background imports: an uploaded file becomes a ``collect.import`` job that reports its progress.

The upload is spooled to a directory (``runtime.ports["imports.spool_dir"]``, by default ``imports/``
beside the SQLite file or under the system temp directory) shared by the API and the worker. The job's
``result`` carries the progress while it runs (written in its own small transactions) and the final
report when done; refused rows go to an error report CSV next to the upload.
"""

from __future__ import annotations

import codecs
import tempfile
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from rapport.collect import import_files
from rapport.errors import NotFound, ValidationFailed
from rapport.models import Job
from rapport.runtime import Runtime
from rapport.worker import queue
from rapport.worker.runner import JobContext, PermanentJobError

JOB_KIND = "collect.import"
SPOOL_PORT = "imports.spool_dir"
_COPY_CHUNK = 1 << 20


def spool_dir(runtime: Runtime) -> Path:
    """Return the directory uploads and error reports are kept in."""
    given = runtime.ports.get(SPOOL_PORT)
    if given:
        path = Path(given)
    elif runtime.is_sqlite and make_url(runtime.settings.database_url).database not in (None, "", ":memory:"):
        database = make_url(runtime.settings.database_url).database or ""
        path = Path(database).resolve().parent / "imports"
    else:
        path = Path(tempfile.gettempdir()) / "rapport-imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_import(
    db: Session,
    runtime: Runtime,
    *,
    workspace_id: int,
    kind: str,
    filename: str,
    stream: BinaryIO,
    fmt: str | None = None,
    mapping: dict[str, str] | None = None,
    actor: str = "system",
) -> int:
    """Spool an upload (in chunks: constant memory) and enqueue its import job; returns the job id."""
    if kind not in import_files.KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(import_files.KINDS)}")
    safe_name = Path(filename or "upload").name
    fmt = import_files.detect_format(Path(safe_name), fmt)
    token = uuid.uuid4().hex
    target = spool_dir(runtime) / f"{workspace_id}-{token}.{fmt}"
    checker = codecs.getincrementaldecoder("utf-8")()
    copied = 0
    try:
        with target.open("wb") as out:
            while chunk := stream.read(_COPY_CHUNK):
                checker.decode(chunk)  # the whole file is checked once, as it is spooled
                out.write(chunk)
                copied += len(chunk)
            checker.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        target.unlink(missing_ok=True)
        raise ValidationFailed(
            f"the file is not UTF-8 text (byte {copied + exc.start + 1:,}): save it as UTF-8 "
            "(a spreadsheet's 'CSV UTF-8') and upload it again",
            code="bad_encoding",
        ) from None
    job_id = queue.enqueue(
        db,
        kind=JOB_KIND,
        workspace_id=workspace_id,
        payload={
            "kind": kind,
            "format": fmt,
            "path": str(target),
            "errors_path": str(target.with_suffix(".errors.csv")),
            "filename": safe_name[:200],
            "mapping": mapping or {},
            "actor": actor,
        },
        dedupe_key=f"{JOB_KIND}:{token}",
        max_attempts=3,
        now=runtime.clock.now(),
    )
    assert job_id is not None
    return job_id


def run_import(ctx: JobContext) -> dict[str, Any]:
    """Job handler: import the spooled file, writing progress into the job's result as it goes."""
    payload = ctx.job.payload
    runtime = ctx.runtime
    job_id = ctx.job.id
    path = Path(payload["path"])
    if not path.is_file() or ctx.job.workspace_id is None:
        raise PermanentJobError("the uploaded file is gone")

    def progress(rows: int) -> None:
        with runtime.sessions() as db:
            db.execute(update(Job).where(Job.id == job_id).values(result={"state": "running", "rows": rows}))
            db.commit()

    try:
        report = import_files.import_file(
            runtime,
            workspace_id=ctx.job.workspace_id,
            path=path,
            kind=payload["kind"],
            fmt=payload["format"],
            mapping=payload.get("mapping") or None,
            error_path=Path(payload["errors_path"]),
            progress=progress,
        )
    except ValidationFailed as exc:  # the file itself is unreadable from some row on: retrying cannot help
        raise PermanentJobError(exc.message) from None
    return {"state": "done", **report.as_dict(), "errors_available": report.failed > 0}


def get_import(db: Session, *, workspace_id: int, job_id: int) -> Job:
    """Return an import job of the workspace; NotFound otherwise (R20)."""
    job = db.scalars(
        select(Job).where(Job.id == job_id, Job.workspace_id == workspace_id, Job.kind == JOB_KIND)
    ).one_or_none()
    if job is None:
        raise NotFound("no such import")
    return job


def _reason(error: str | None) -> str | None:
    """A failed import's error as a person reads it (without the worker's exception class)."""
    prefix = f"{PermanentJobError.__name__}: "
    return error[len(prefix) :] if error and error.startswith(prefix) else error


def describe(job: Job) -> dict[str, Any]:
    """Render an import job for the API: status, file, progress or final report."""
    result = job.result or {}
    return {
        "id": job.id,
        "status": job.status,
        "kind": job.payload.get("kind"),
        "filename": job.payload.get("filename"),
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "rows": result.get("rows", 0),
        "report": result if result.get("state") == "done" else None,
        "error": _reason(job.last_error) if job.status == queue.DEAD else None,
    }
