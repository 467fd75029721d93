"""``rapport events quarantine list|show|replay``: inspect and replay quarantined events (R4)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from rapport.accounts.principal import system_principal
from rapport.cli.common import DatabaseOption, WorkspaceOption, cli_runtime, console, resolve_workspace
from rapport.collect import quarantine as quarantine_service
from rapport.kit.pagination import Page

events_app = typer.Typer(
    help="Events: the quarantine of messages that failed validation.", no_args_is_help=True
)
quarantine_app = typer.Typer(help="List, show and replay quarantined events.", no_args_is_help=True)
events_app.add_typer(quarantine_app, name="quarantine")


def register(app: typer.Typer) -> None:
    """Add the ``events`` command group to the root command."""
    app.add_typer(events_app, name="events")


@quarantine_app.command("list")
def quarantine_list(
    include_replayed: bool = typer.Option(False, "--all", help="Include events already replayed"),
    limit: int = typer.Option(50, min=1, max=1000),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """List quarantined events, newest first."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        rows = quarantine_service.list_quarantined(
            db, workspace_id=ws.id, page=Page(limit=limit), include_replayed=include_replayed
        )
        table = Table("id", "received", "messageId", "reason", "replayed")
        for row in rows:
            details = row.details if isinstance(row.details, dict) else {}
            table.add_row(
                str(row.id),
                row.received_at.isoformat(timespec="seconds"),
                str(details.get("messageId") or ""),
                row.reason,
                row.replay_result or "",
            )
        console.print(table)
        console.print(f"{len(rows)} shown")


@quarantine_app.command("show")
def quarantine_show(
    quarantine_id: int = typer.Argument(...),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Print one quarantined event: payload, reason and field errors, as JSON."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        row = quarantine_service.get_quarantined(db, workspace_id=ws.id, quarantine_id=quarantine_id)
        doc = {
            "id": row.id,
            "reason": row.reason,
            "details": row.details,
            "payload": quarantine_service.payload_of(row),
            "replay_result": row.replay_result,
        }
        console.print_json(json.dumps(doc, default=str))


@quarantine_app.command("replay")
def quarantine_replay(
    ids: list[int] = typer.Argument(None, help="Ids to replay (default: every open one)"),
    limit: int = typer.Option(1000, min=1, max=100_000),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Re-validate quarantined events and store those that now pass."""
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = resolve_workspace(db, workspace)
        results = quarantine_service.replay(
            db,
            workspace_id=ws.id,
            principal=system_principal(ws.id),
            now=runtime.clock.now(),
            ids=ids or None,
            limit=limit,
        )
        db.commit()
        summary = quarantine_service.summarize(results)
        for result in summary.results:
            if result.status != "stored":
                console.print(f"{result.id}: {result.status} {result.reason or ''}")
        console.print(f"stored {summary.stored}, still invalid {summary.invalid}, skipped {summary.skipped}")
        if summary.invalid:
            raise typer.Exit(1)
