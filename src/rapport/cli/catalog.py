"""``rapport products import FILE.csv``: load the product catalogue from a CSV file, with a progress bar;
``rapport stores import FILE`` / ``rapport stores list``: the workspace's stores."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rapport.catalog import importer
from rapport.catalog import stores as stores_service
from rapport.cli.common import DatabaseOption, WorkspaceOption, cli_runtime, console, resolve_workspace
from rapport.collect.import_files import safe_cell
from rapport.errors import Conflict, ValidationFailed
from rapport.segments import store_use

products_app = typer.Typer(help="The product catalogue templates recommend from.", no_args_is_help=True)
stores_app = typer.Typer(
    help="The stores segments measure distances to and templates show as the nearest.", no_args_is_help=True
)

ERRORS_SHOWN = 20


def register(app: typer.Typer) -> None:
    """Add the ``products`` command group to the root command."""
    app.add_typer(products_app, name="products")
    app.add_typer(stores_app, name="stores")


@stores_app.command("import")
def import_stores(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Replace the workspace's stores with those of a CSV (name, latitude, longitude, id, address, city,
    postcode, phone, url, opens_at, closes_at) or JSON file (a list). Every row is checked first: with any
    bad row nothing changes, and each problem is listed."""
    kind = "csv" if file.suffix.lower() == ".csv" else "json"
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = resolve_workspace(db, workspace)
        rows, first = stores_service.read_file(file.read_text(encoding="utf-8-sig"), kind=kind)
        try:
            saved = stores_service.replace_stores(
                db,
                workspace_id=ws.id,
                items=rows,
                actor="cli",
                first_row=first,
                guard=functools.partial(store_use.check_stores_kept, db, workspace_id=ws.id),
            )
        except Conflict as exc:  # the new list drops stores that segments use
            console.print(f"[red]refused: {exc.message}[/red]")
            raise typer.Exit(1) from None
        except ValidationFailed as exc:  # rows refused: each problem in ``details``
            if not exc.details:
                console.print(f"[red]refused: {exc.message}[/red]")
                raise typer.Exit(1) from None
            shown = Table("row", "field", "reason", title="refused: nothing changed")
            for error in (exc.details or [])[:ERRORS_SHOWN]:
                shown.add_row(str(error["row"]), error["field"] or "(row)", error["reason"])
            console.print(shown)
            raise typer.Exit(1) from None
        db.commit()
    console.print(f"{len(saved)} stores in {ws.slug}")


@stores_app.command("list")
def list_stores(workspace: str = WorkspaceOption, database_url: str = DatabaseOption) -> None:
    """Show the workspace's stores."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        found = stores_service.list_stores(db, workspace_id=ws.id)
    table = Table("id", "name", "city", "latitude", "longitude")
    for store in found:
        table.add_row(*(str(store.get(k, "")) for k in ("id", "name", "city", "latitude", "longitude")))
    console.print(table)


def _count_rows(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return max(0, count - 1)


def _write_errors(report: importer.ImportReport, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "field", "reason"])
        for error in report.errors:
            writer.writerow([error.row, safe_cell(error.field), safe_cell(error.reason)])


@products_app.command("import")
def import_products(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    errors: Path = typer.Option(None, "--errors", help="Write the refused rows' errors to this CSV"),
    batch_size: int = typer.Option(importer.DEFAULT_BATCH, "--batch-size", min=1, max=10_000),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Create or replace products from a CSV (id, name, category, price, currency, url, image, stock; other
    columns become attributes). Bad rows are listed and skipped; the good rows are stored in one
    transaction."""
    total = _count_rows(file)
    with cli_runtime(database_url) as runtime:
        with runtime.read_sessions() as db:
            ws = resolve_workspace(db, workspace)
        columns = (TextColumn("importing products"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar, runtime.sessions() as db:
            task = bar.add_task("products", total=total or None)
            with file.open("r", encoding="utf-8-sig", newline="") as lines:
                report = importer.import_csv_lines(
                    db,
                    workspace_id=ws.id,
                    lines=lines,
                    now=runtime.clock.now(),
                    progress=lambda rows: bar.update(task, completed=rows),
                    batch_size=batch_size,
                )
            db.commit()
            bar.update(task, completed=report.rows, total=report.rows)
    table = Table("rows", "created", "updated", "refused")
    table.add_row(str(report.rows), str(report.created), str(report.updated), str(report.refused))
    console.print(table)
    if report.errors:
        shown = Table("row", "field", "reason", title="refused rows")
        for error in report.errors[:ERRORS_SHOWN]:
            shown.add_row(str(error.row), error.field or "(row)", error.reason)
        console.print(shown)
        if len(report.errors) > ERRORS_SHOWN and errors is None:
            console.print(f"… {len(report.errors) - ERRORS_SHOWN} more; write them all with --errors FILE")
    if errors is not None:
        _write_errors(report, errors)
        console.print(f"errors written to {errors}")
