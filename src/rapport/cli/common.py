"""What every CLI command shares: settings, runtime, console, error display."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from rapport.accounts import service as accounts_service
from rapport.app import wire_runtime
from rapport.config import Settings
from rapport.errors import RapportError
from rapport.kit.logs import configure_logging
from rapport.models import Workspace
from rapport.runtime import Runtime, build_runtime

console = Console()
err_console = Console(stderr=True)


def load_settings(database_url: str | None = None) -> Settings:
    """Build settings from the environment, with an optional database override from the command line."""
    settings = Settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


@contextmanager
def cli_runtime(database_url: str | None = None, *, quiet_logs: bool = True) -> Iterator[Runtime]:
    """Yield a runtime for one command and dispose of it afterwards; RapportErrors exit with code 1."""
    settings = load_settings(database_url)
    configure_logging(level="WARNING" if quiet_logs else settings.log_level, json_lines=False)
    runtime = wire_runtime(build_runtime(settings))
    try:
        yield runtime
    except RapportError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from None
    finally:
        runtime.close()


def resolve_workspace(db: Session, slug: str | None) -> Workspace:
    """Return the workspace named by ``slug``, or the only one when there is exactly one."""
    if slug:
        return accounts_service.get_workspace_by_slug(db, slug)
    workspaces = accounts_service.list_workspaces(db)
    if len(workspaces) == 1:
        return workspaces[0]
    names = ", ".join(w.slug for w in workspaces) or "none yet"
    err_console.print(f"[red]error[/red]: name a workspace with --workspace ({names})")
    raise typer.Exit(2)


DatabaseOption = typer.Option(None, "--database-url", envvar="RAPPORT_DATABASE_URL", help="Database URL")
WorkspaceOption = typer.Option(None, "--workspace", "-w", help="Workspace slug (default: the only one)")
