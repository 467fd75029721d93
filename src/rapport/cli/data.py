"""``rapport import profiles|events FILE`` and ``rapport profiles export|erase ID``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rapport.app import wire_runtime
from rapport.cli.common import DatabaseOption, WorkspaceOption, cli_runtime, console, resolve_workspace
from rapport.collect import import_files
from rapport.collect.importer import DEFAULT_BATCH, ImportReport
from rapport.collect.processor import hooks_for
from rapport.profiles import gdpr

import_app = typer.Typer(help="Import profiles or events from CSV or JSONL files.", no_args_is_help=True)
profiles_app = typer.Typer(help="Export or erase a person's data (GDPR).", no_args_is_help=True)

FormatOption = typer.Option(None, "--format", "-f", help="csv or jsonl (default: from the file suffix)")
MapOption = typer.Option([], "--map", "-m", help="Column mapping csv_col=field (repeatable)")
MappingFileOption = typer.Option(None, "--mapping", help="JSON file {csv_col: field}")
ErrorsOption = typer.Option(None, "--errors", help="Error report CSV (default: FILE.errors.csv)")
BatchOption = typer.Option(DEFAULT_BATCH, "--batch-size", min=1, max=100_000, help="Rows per transaction")


def register(app: typer.Typer) -> None:
    """Add the ``import`` and ``profiles`` command groups to the root command."""
    app.add_typer(import_app, name="import")
    app.add_typer(profiles_app, name="profiles")


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return count


def _run_import(
    kind: str,
    file: Path,
    fmt: str | None,
    maps: list[str],
    mapping_file: Path | None,
    errors: Path | None,
    batch_size: int,
    workspace: str | None,
    database_url: str | None,
) -> None:
    mapping = import_files.parse_mapping(maps, mapping_file)
    fmt = import_files.detect_format(file, fmt)
    error_path = errors or file.with_name(file.name + ".errors.csv")
    total = max(0, _count_lines(file) - (1 if fmt == "csv" else 0))
    with cli_runtime(database_url) as runtime:
        wire_runtime(runtime)
        with runtime.read_sessions() as db:
            ws = resolve_workspace(db, workspace)
        columns = (
            TextColumn(f"importing {kind}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(kind, total=total or None)
            report = import_files.import_file(
                runtime,
                workspace_id=ws.id,
                path=file,
                kind=kind,
                fmt=fmt,
                mapping=mapping,
                error_path=error_path,
                progress=lambda rows: bar.update(task, completed=rows),
                batch_size=batch_size,
            )
            bar.update(task, completed=report.rows, total=report.rows)
    _print_report(report, error_path)


def _print_report(report: ImportReport, error_path: Path) -> None:
    table = Table("rows", "imported", "created", "duplicates", "suppressed", "refused", "merges", "rows/s")
    rate = report.rows / report.seconds if report.seconds else 0.0
    table.add_row(
        str(report.rows),
        str(report.imported),
        str(report.created),
        str(report.duplicates),
        str(report.suppressed),
        str(report.failed),
        str(report.merges),
        f"{rate:,.0f}",
    )
    console.print(table)
    if report.failed:
        console.print(f"refused rows: {error_path}")
    else:
        error_path.unlink(missing_ok=True)


@import_app.command("profiles")
def import_profiles(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    fmt: str = FormatOption,
    maps: list[str] = MapOption,
    mapping_file: Path = MappingFileOption,
    errors: Path = ErrorsOption,
    batch_size: int = BatchOption,
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Create or update profiles: user_id, email, phone, anonymous_id, external:<x> identify; other
    columns are traits."""
    _run_import("profiles", file, fmt, maps, mapping_file, errors, batch_size, workspace, database_url)


@import_app.command("events")
def import_events(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    fmt: str = FormatOption,
    maps: list[str] = MapOption,
    mapping_file: Path = MappingFileOption,
    errors: Path = ErrorsOption,
    batch_size: int = BatchOption,
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Append Segment-spec messages (type, event, userId, anonymousId, messageId, timestamp, …); a
    mapping target like properties.amount nests."""
    _run_import("events", file, fmt, maps, mapping_file, errors, batch_size, workspace, database_url)


@profiles_app.command("export")
def profiles_export(
    profile_id: int = typer.Argument(...),
    output: Path = typer.Option(None, "--output", "-o", help="Write the JSON here (default: stdout)"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Export everything held about a person as JSON (audited)."""
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        wire_runtime(runtime)
        ws = resolve_workspace(db, workspace)
        data = gdpr.export_profile(
            db,
            workspace_id=ws.id,
            profile_id=profile_id,
            actor="cli",
            now=runtime.clock.now(),
            hooks=hooks_for(runtime),
        )
        db.commit()
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        console.print(f"exported profile {data['profile']['id']} to {output}")


@profiles_app.command("erase")
def profiles_erase(
    profile_id: int = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Erase a person: delete their profile, events and identifiers and block re-creation (audited)."""
    if not yes:
        typer.confirm(f"Erase profile {profile_id} and everything about this person?", abort=True)
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        wire_runtime(runtime)
        ws = resolve_workspace(db, workspace)
        result = gdpr.erase_profile(
            db, workspace_id=ws.id, profile_id=profile_id, actor="cli", hooks=hooks_for(runtime)
        )
        db.commit()
    deleted = ", ".join(f"{n} {label}" for label, n in result.deleted.items())
    console.print(
        f"erased profile {result.profile_id}: {deleted}; {result.suppressed} identifiers suppressed"
    )
