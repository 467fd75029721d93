"""Data › Imports: upload a CSV of profiles or events, map its columns, run it as a background job, follow
its progress (htmx polling) and download the refused rows.

An upload is staged (``<spool>/ui-staged/<workspace>-<token>.csv`` plus a small JSON note) until its
mapping is chosen; staged files older than a day are removed at the next upload. Starting hands the file to
:func:`rapport.collect.import_tasks.start_import` — profiles as the CSV with the importer's own column
mapping, events rewritten into JSON lines by :mod:`rapport.web.data_mapping`.
"""

from __future__ import annotations

import csv
import json
import re
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from rapport.api.deps import DbSession, ReadDbSession
from rapport.audit import service as audit_service
from rapport.collect import import_tasks
from rapport.errors import NotFound
from rapport.runtime import Runtime
from rapport.web import data_mapping as mapping
from rapport.web.rendering import redirect, render
from rapport.web.session import UiEditorPost, UiPage, UiRoute, UiUser
from rapport.worker import queue

router = APIRouter(prefix="/data/imports", route_class=UiRoute, include_in_schema=False)

#: Largest file the upload form takes (the API and CLI take any size).
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_COLUMNS = 200
SAMPLE_ROWS = 5
STAGED_TTL_SECONDS = 24 * 3600
_TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20
#: Job payload key where the UI keeps the file's data row count (for the progress bar).
TOTAL_KEY = "ui_total_rows"


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _staging(runtime: Runtime) -> Path:
    path = import_tasks.spool_dir(runtime) / "ui-staged"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _staged(runtime: Runtime, workspace_id: int, token: str) -> tuple[Path, dict[str, Any]]:
    """Return a staged upload of this workspace and its note; NotFound for anything else."""
    if not _TOKEN_RE.match(token):
        raise NotFound("no such upload")
    base = _staging(runtime) / f"{workspace_id}-{token}"
    data, note = base.with_suffix(".csv"), base.with_suffix(".json")
    if not data.is_file() or not note.is_file():
        raise NotFound("this upload is gone: upload the file again")
    return data, json.loads(note.read_text(encoding="utf-8"))


def _prune(directory: Path, now: float) -> None:
    for path in directory.iterdir():
        try:
            if now - path.stat().st_mtime > STAGED_TTL_SECONDS:
                path.unlink()
        except OSError:
            continue


def _preview(path: Path) -> tuple[list[str], list[list[str]], int]:
    """Return the header, the first rows and the number of data rows of a staged CSV."""
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        rows: list[list[str]] = []
        total = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            total += 1
            if len(rows) < SAMPLE_ROWS:
                rows.append(row)
    return header, rows, total


def _header_problem(header: list[str]) -> str:
    if not header:
        return "The file is empty: the first line must name the columns."
    if len(header) > MAX_COLUMNS:
        return f"The file has {len(header)} columns; at most {MAX_COLUMNS} can be mapped."
    seen: set[str] = set()
    for number, name in enumerate(header, start=1):
        if not name.strip():
            return f"Column {number} has no name in the first line."
        if name in seen:
            return f"Two columns are named “{name}”: rename one."
        seen.add(name)
    return ""


def _imports(db: Any, workspace_id: int) -> list[dict[str, Any]]:
    jobs = queue.list_jobs(db, kind=import_tasks.JOB_KIND, workspace_id=workspace_id, limit=20)
    return [_view(job) for job in jobs]


def _view(job: Any) -> dict[str, Any]:
    described = import_tasks.describe(job)
    total = job.payload.get(TOTAL_KEY)
    rows = int(described["rows"] or 0)
    report = described["report"]
    return {
        **described,
        "total": total,
        "percent": min(100, round(100 * rows / total)) if total else None,
        "live": job.status in (queue.QUEUED, queue.RUNNING),
        "errors_available": bool(report and report.get("errors_available")),
    }


def _list_page(
    request: Request, ui: UiUser, db: Any, *, error: str = "", kind: str = "profiles", status_code: int = 200
) -> Response:
    context = {
        "title": "Imports",
        "imports": _imports(db, ui.workspace_id),
        "error": error,
        "kind": kind,
        "max_mb": MAX_UPLOAD_BYTES // (1024 * 1024),
    }
    return render(request, "data/imports.html", context, status_code=status_code)


@router.get("")
def imports_page(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """The latest imports and the upload form."""
    return _list_page(request, ui, db)


@router.post("")
def upload(
    request: Request,
    ui: UiEditorPost,
    db: ReadDbSession,
    file: Annotated[UploadFile | None, File()] = None,
    kind: Annotated[str, Form(max_length=20)] = "profiles",
) -> Response:
    """Stage an uploaded CSV and go on to mapping its columns."""
    if kind not in ("profiles", "events"):
        return _list_page(request, ui, db, error="Choose profiles or events.", status_code=400)
    if file is None or not file.filename:
        return _list_page(request, ui, db, error="Choose a CSV file to upload.", kind=kind, status_code=400)
    if not file.filename.lower().endswith((".csv", ".txt")):
        message = "Upload a .csv file (JSON lines go through the API or `rapport import`)."
        return _list_page(request, ui, db, error=message, kind=kind, status_code=400)
    runtime = _runtime(request)
    staging = _staging(runtime)
    _prune(staging, time.time())
    token = secrets.token_hex(16)
    base = staging / f"{ui.workspace_id}-{token}"
    data_path = base.with_suffix(".csv")
    size = 0
    with data_path.open("wb") as out:
        while chunk := file.file.read(_CHUNK):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                break
            out.write(chunk)
    problem = ""
    if size > MAX_UPLOAD_BYTES:
        problem = f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB: use the API or `rapport import`."
    else:
        try:
            header, _rows, total = _preview(data_path)
            problem = _header_problem(header) or ("The file has no data rows." if total == 0 else "")
        except (UnicodeDecodeError, csv.Error) as exc:
            problem = f"The file is not a UTF-8 CSV ({exc.__class__.__name__})."
    if problem:
        data_path.unlink(missing_ok=True)
        return _list_page(request, ui, db, error=f"{file.filename}: {problem}", kind=kind, status_code=400)
    note = {"kind": kind, "filename": Path(file.filename).name[:200], "user_id": ui.user_id}
    base.with_suffix(".json").write_text(json.dumps(note), encoding="utf-8")
    return redirect(request, f"/data/imports/new/{token}")


def _default_choices(header: list[str], rows: list[list[str]], kind: str) -> list[mapping.ColumnChoice]:
    choices = []
    taken: set[str] = set()
    for index, column in enumerate(header):
        samples = [row[index] for row in rows if index < len(row)]
        choice = mapping.guess(column, samples, kind=kind)
        if choice.role.startswith(("id:", "event:", "updated_at")) and choice.role in taken:
            choice = mapping.ColumnChoice(column, mapping.IGNORE)
        taken.add(choice.role)
        choices.append(choice)
    return choices


def _mapping_page(
    request: Request,
    token: str,
    note: dict[str, Any],
    data_path: Path,
    choices: list[mapping.ColumnChoice] | None = None,
    *,
    event_type: str = "track",
    event_name: str = "",
    error: mapping.MappingError | None = None,
    status_code: int = 200,
) -> Response:
    header, rows, total = _preview(data_path)
    kind = note["kind"]
    columns = choices or _default_choices(header, rows, kind)
    context = {
        "title": "Map columns",
        "token": token,
        "kind": kind,
        "filename": note["filename"],
        "header": header,
        "rows": rows,
        "total": total,
        "columns": [
            {"index": i, "choice": c, "samples": [r[i] for r in rows if i < len(r)]}
            for i, c in enumerate(columns)
        ],
        "roles": mapping.roles_for(kind),
        "named": mapping.NAMED,
        "event_types": mapping.EVENT_TYPES,
        "event_type": event_type,
        "event_name": event_name,
        "error": error,
    }
    return render(request, "data/import_map.html", context, status_code=status_code)


@router.get("/new/{token}")
def mapping_page(request: Request, token: str, ui: UiPage) -> Response:
    """Show the staged file's header and first rows with a role to choose for each column."""
    data_path, note = _staged(_runtime(request), ui.workspace_id, token)
    return _mapping_page(request, token, note, data_path)


@router.post("/new/{token}")
async def start(request: Request, token: str, ui: UiEditorPost, db: DbSession) -> Response:
    """Check the mapping and start the import job; a refused mapping re-renders the form with the error."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    # File reading, the events rewrite and the database work run off the event loop.
    return await run_in_threadpool(_start, request, token, ui, db, fields)


def _start(request: Request, token: str, ui: UiUser, db: Session, form: dict[str, str]) -> Response:
    runtime = _runtime(request)
    data_path, note = _staged(runtime, ui.workspace_id, token)
    header, _rows, total = _preview(data_path)
    choices = [
        mapping.ColumnChoice(
            column,
            str(form.get(f"role_{i}") or mapping.IGNORE)[:40],
            str(form.get(f"name_{i}") or "")[:100],
        )
        for i, column in enumerate(header)
    ]
    kind = note["kind"]
    event_type = str(form.get("event_type") or "track")[:20]
    event_name = str(form.get("event_name") or "")[:300]
    try:
        mapping.check(choices, kind=kind, event_type=event_type, event_name=event_name)
    except mapping.MappingError as exc:
        return _mapping_page(
            request,
            token,
            note,
            data_path,
            choices,
            event_type=event_type,
            event_name=event_name,
            error=exc,
            status_code=400,
        )
    actor = ui.principal.actor
    if kind == "profiles":
        with data_path.open("rb") as stream:
            job_id = import_tasks.start_import(
                db,
                runtime,
                workspace_id=ui.workspace_id,
                kind=kind,
                filename=note["filename"],
                stream=stream,
                fmt="csv",
                mapping=mapping.profile_mapping(choices),
                actor=actor,
            )
    else:
        lines = data_path.with_suffix(".jsonl")
        with (
            data_path.open("r", encoding="utf-8-sig", newline="") as source,
            lines.open("w", encoding="utf-8") as out,
        ):
            for line in mapping.csv_to_event_lines(
                source, choices, event_type=event_type, event_name=event_name
            ):
                out.write(line)
        try:
            with lines.open("rb") as stream:
                job_id = import_tasks.start_import(
                    db,
                    runtime,
                    workspace_id=ui.workspace_id,
                    kind=kind,
                    filename=note["filename"],
                    stream=stream,
                    fmt="jsonl",
                    actor=actor,
                )
        finally:
            lines.unlink(missing_ok=True)
    job = import_tasks.get_import(db, workspace_id=ui.workspace_id, job_id=job_id)
    job.payload = {**job.payload, TOTAL_KEY: total}
    audit_service.record(
        db,
        workspace_id=ui.workspace_id,
        actor=actor,
        action="import.started",
        target_type="import",
        target_id=job_id,
        details={
            "kind": kind,
            "filename": note["filename"],
            "rows": total,
            "columns": {c.column: [c.role, c.name] for c in choices if c.role != mapping.IGNORE},
        },
    )
    db.commit()
    data_path.unlink(missing_ok=True)
    data_path.with_suffix(".json").unlink(missing_ok=True)
    return redirect(request, f"/data/imports/{job_id}")


@router.get("/{import_id}")
def import_page(request: Request, import_id: int, ui: UiPage, db: ReadDbSession) -> Response:
    """One import: its progress while it runs (polled), then its report."""
    job = import_tasks.get_import(db, workspace_id=ui.workspace_id, job_id=import_id)
    return render(request, "data/import.html", {"title": f"Import #{job.id}", "item": _view(job)})


@router.get("/{import_id}/progress")
def import_progress(request: Request, import_id: int, ui: UiPage, db: ReadDbSession) -> Response:
    """The progress panel alone, for htmx polling (stops polling once the job is finished)."""
    job = import_tasks.get_import(db, workspace_id=ui.workspace_id, job_id=import_id)
    return render(request, "data/_import_progress.html", {"item": _view(job)})


@router.get("/{import_id}/errors")
def import_errors(import_id: int, ui: UiPage, db: ReadDbSession) -> Response:
    """Download the refused rows as CSV (row, column, reason; spreadsheet-safe)."""
    job = import_tasks.get_import(db, workspace_id=ui.workspace_id, job_id=import_id)
    path = Path(str(job.payload.get("errors_path", "")))
    if not path.is_file():
        raise NotFound("no error report for this import (yet)")
    return FileResponse(
        path,
        media_type="text/csv",
        filename=f"import-{import_id}-errors.csv",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
