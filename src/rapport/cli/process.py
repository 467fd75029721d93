"""``rapport traits list|create|recompute``, ``rapport scores run``, ``rapport lifestyle upload``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rapport.cli.common import DatabaseOption, WorkspaceOption, cli_runtime, console, resolve_workspace
from rapport.process import lifestyle, scores_service, traits_service

traits_app = typer.Typer(help="Computed traits: list, define, recompute.", no_args_is_help=True)
scores_app = typer.Typer(help="Scores: RFM, CLV and churn, propensity.", no_args_is_help=True)
lifestyle_app = typer.Typer(help="Lifestyle reference tables keyed by postcode.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``traits``, ``scores`` and ``lifestyle`` command groups to the root command."""
    app.add_typer(traits_app, name="traits")
    app.add_typer(scores_app, name="scores")
    app.add_typer(lifestyle_app, name="lifestyle")


@traits_app.command("list")
def traits_list(workspace: str = WorkspaceOption, database_url: str = DatabaseOption) -> None:
    """List the workspace's computed traits."""
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = resolve_workspace(db, workspace)
        traits_service.ensure_builtins(db, workspace_id=ws.id, now=runtime.clock.now())
        db.commit()
        table = Table("name", "event", "aggregation", "property", "window", "conditions")
        for row in traits_service.list_definitions(db, workspace_id=ws.id):
            table.add_row(
                row.name,
                row.event,
                row.aggregation,
                row.property or "",
                f"{row.window_days} d" if row.window_days else "all time",
                json.dumps(row.conditions) if row.conditions else "",
            )
        console.print(table)


@traits_app.command("create")
def traits_create(
    name: str = typer.Argument(...),
    event: str = typer.Option(..., help="Event name, '*' for any, '$purchase' for the purchase events"),
    aggregation: str = typer.Option(..., help="count, sum, avg, min, max, first_at, last_at, ..."),
    property: str | None = typer.Option(None, "--property", help="Property path (sum/avg/… need one)"),
    conditions: str | None = typer.Option(None, help='JSON list of {"property", "op", "value"}'),
    window_days: int | None = typer.Option(None, help="Only the last N days (evaluated at read time)"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Define a computed trait; run ``rapport traits recompute NAME`` (or the worker) to backfill it."""
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = resolve_workspace(db, workspace)
        row = traits_service.create_definition(
            db,
            workspace_id=ws.id,
            name=name,
            event=event,
            aggregation=aggregation,
            property=property,
            conditions=json.loads(conditions) if conditions else [],
            window_days=window_days,
            now=runtime.clock.now(),
        )
        db.commit()
        console.print(f"created computed trait {row.name} (id {row.id}); a backfill job is queued")


@traits_app.command("recompute")
def traits_recompute(
    name: str | None = typer.Argument(None, help="One trait (default: all)"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Recompute stored computed traits for every profile from the events, with a progress bar."""
    with cli_runtime(database_url) as runtime:
        with runtime.read_sessions() as db:
            ws_id = resolve_workspace(db, workspace).id
        columns = (TextColumn("recompute"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("profiles", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            done = traits_service.recompute(runtime, ws_id, [name] if name else None, progress)
        console.print(f"{done} profiles recomputed")


@scores_app.command("run")
def scores_run(
    kind: str = typer.Argument("all", help="rfm, clv, propensity or all"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Run score models now and print the recorded runs."""
    kinds = list(scores_service.KINDS) if kind == "all" else [kind]
    if any(k not in scores_service.KINDS for k in kinds):
        raise typer.BadParameter("kind must be rfm, clv, propensity or all")
    with cli_runtime(database_url) as runtime:
        with runtime.read_sessions() as db:
            ws_id = resolve_workspace(db, workspace).id
        watch = scores_service.Stopwatch()
        ids = scores_service.run_scores(runtime, ws_id, kinds, runtime.clock.now(), stopwatch=watch)
        with runtime.read_sessions() as db:
            table = Table("run", "kind", "name", "status", "usable", "profiles", "seconds", "error")
            for run in scores_service.list_runs(db, workspace_id=ws_id, limit=len(ids)):
                table.add_row(
                    str(run.id),
                    run.kind,
                    run.name,
                    run.status,
                    "yes" if run.usable else "no",
                    str(run.profiles_scored),
                    str(run.metrics.get("seconds", "")),
                    (run.error or "")[:60],
                )
            console.print(table)
        stages = ", ".join(f"{name} {seconds:.2f}" for name, seconds in watch.seconds.items())
        console.print(f"stages (s): {stages}")


@lifestyle_app.command("upload")
def lifestyle_upload(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    name: str = typer.Option(..., "--name", help="Table name (an existing table is replaced)"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Upload a lifestyle table (CSV: key column + value columns) and apply it to every profile."""
    with cli_runtime(database_url) as runtime:
        with runtime.sessions() as db:
            ws_id = resolve_workspace(db, workspace).id
            table = lifestyle.save_table(
                db,
                workspace_id=ws_id,
                name=name,
                data=file.read_bytes(),
                now=runtime.clock.now(),
                enqueue=False,
            )
            rows = table.row_count
            db.commit()
        matched = lifestyle.apply_all(runtime, ws_id)
        console.print(f"table {name}: {rows} keys; {matched} profiles matched")
