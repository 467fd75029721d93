"""``rapport segments preview|create|list|members``: segments from the command line (delegates to the service)."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from rapport.cli.common import (
    DatabaseOption,
    WorkspaceOption,
    cli_runtime,
    console,
    err_console,
    resolve_workspace,
)
from rapport.kit.pagination import Page
from rapport.segments import SegmentError
from rapport.segments import service as segments_service
from rapport.segments.schemas import SegmentCreate

segments_app = typer.Typer(help="Segments: preview, save, list and export audiences.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``segments`` command group to the root command."""
    app.add_typer(segments_app, name="segments")


def _explain(exc: SegmentError, text: str) -> None:
    err_console.print(f"[red]error[/red]: {exc.render(text)}", markup=False, highlight=False)
    raise typer.Exit(1)


@segments_app.command("preview")
def preview(
    text: str = typer.Argument(..., help="The segment, e.g. 'purchased at least 3 times in last 90 days'"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Count the profiles a segment matches now and show the first 20."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        try:
            result = segments_service.preview(
                db, workspace_id=ws.id, text=text, ast=None, now=runtime.clock.now()
            )
        except SegmentError as exc:
            _explain(exc, text)
            return
        table = Table("id", "email", "phone", "name")
        for row in result.sample:
            table.add_row(str(row.id), row.email or "", row.phone or "", row.name or "")
        console.print(table)
        console.print(f"{result.count} profiles match  ({result.elapsed_ms} ms)  {result.text}")


@segments_app.command("create")
def create(
    name: str = typer.Argument(...),
    text: str = typer.Argument(...),
    description: str = typer.Option("", help="What the segment is for"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Save a segment and materialise its members."""
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = resolve_workspace(db, workspace)
        data = SegmentCreate(name=name, text=text, description=description)
        try:
            segment = segments_service.create_segment(
                db, workspace_id=ws.id, data=data, actor="cli", now=runtime.clock.now()
            )
        except SegmentError as exc:
            _explain(exc, text)
            return
        db.commit()
        console.print(f"segment {segment.id} {segment.name!r}: {segment.member_count} members")


@segments_app.command("list")
def list_segments(
    include_archived: bool = typer.Option(False, "--all", help="Include archived segments"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """List segments with their member counts."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        table = Table("id", "name", "members", "version", "status", "definition")
        for s in segments_service.list_segments(db, workspace_id=ws.id, include_archived=include_archived):
            table.add_row(str(s.id), s.name, str(s.member_count), str(s.version), s.status, s.text)
        console.print(table)


@segments_app.command("members")
def members(
    segment_id: int = typer.Argument(...),
    csv: bool = typer.Option(False, "--csv", help="Write every member as formula-safe CSV to stdout"),
    limit: int = typer.Option(50, min=1, max=1000),
    offset: int = typer.Option(0, min=0),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Show a page of a segment's members, or export them all with --csv."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        if csv:
            for line in segments_service.export_csv(db, workspace_id=ws.id, segment_id=segment_id):
                sys.stdout.write(line)
            return
        rows = segments_service.list_members(
            db, workspace_id=ws.id, segment_id=segment_id, page=Page(limit=limit, offset=offset)
        )
        table = Table("id", "email", "name", "entered")
        for row in rows:
            entered = row.entered_at.isoformat(timespec="seconds") if row.entered_at else ""
            table.add_row(str(row.id), row.email or "", row.name or "", entered)
        console.print(table)
