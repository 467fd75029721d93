"""Administration: ``rapport workspaces``, ``rapport users``, ``rapport keys``."""

from __future__ import annotations

import typer
from rich.table import Table

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import SCOPES, Role
from rapport.cli.common import DatabaseOption, WorkspaceOption, cli_runtime, console, resolve_workspace

workspaces_app = typer.Typer(help="Create and list workspaces.", no_args_is_help=True)
users_app = typer.Typer(help="Create UI users and give them roles.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the administration command groups to the root command."""
    app.add_typer(workspaces_app, name="workspaces")
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")


@workspaces_app.command("create")
def workspaces_create(
    slug: str = typer.Argument(..., help="URL-safe name, e.g. acme"),
    name: str = typer.Option("", help="Display name"),
    timezone: str = typer.Option("Europe/London"),
    region: str = typer.Option("GB", help="Default phone region (ISO 3166 alpha-2)"),
    database_url: str = DatabaseOption,
) -> None:
    """Create a workspace."""
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = accounts_service.create_workspace(
            db, name=name or slug, slug=slug, timezone=timezone, default_region=region.upper()
        )
        db.commit()
        console.print(f"workspace [bold]{ws.slug}[/bold] created (id {ws.id})")


@workspaces_app.command("list")
def workspaces_list(database_url: str = DatabaseOption) -> None:
    """List workspaces."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        table = Table("id", "slug", "name", "timezone", "created")
        for ws in accounts_service.list_workspaces(db):
            table.add_row(
                str(ws.id), ws.slug, ws.name, ws.timezone, ws.created_at.isoformat(timespec="seconds")
            )
        console.print(table)


@users_app.command("create")
def users_create(
    email: str = typer.Argument(...),
    role: Role = typer.Option(Role.ADMIN, help="Role in the workspace"),
    name: str = typer.Option(""),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, envvar="RAPPORT_NEW_USER_PASSWORD"
    ),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Create a UI user (or give an existing one a role) in a workspace."""
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = resolve_workspace(db, workspace)
        user = accounts_service.get_or_create_user(db, email=email, password=password, name=name)
        accounts_service.set_role(db, workspace_id=ws.id, user_id=user.id, role=role, actor="cli")
        db.commit()
        console.print(f"user {user.email} is {role.value} in {ws.slug}")


@keys_app.command("create")
def keys_create(
    kind: str = typer.Argument(..., help="write (public, ingest only) or secret (scoped)"),
    name: str = typer.Option("", help="What the key is for"),
    scope: list[str] = typer.Option([], "--scope", "-s", help=f"Scope (repeatable): {', '.join(SCOPES)}"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Create a key and print its value (shown only this once)."""
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = resolve_workspace(db, workspace)
        issued = accounts_service.create_key(
            db, workspace_id=ws.id, kind=kind, name=name, scopes=scope, actor="cli"
        )
        db.commit()
        console.print(f"{kind} key {issued.key.id} for {ws.slug}: [bold]{issued.plain}[/bold]")
        console.print("Store it now: only its hash is kept.")


@keys_app.command("list")
def keys_list(
    include_revoked: bool = typer.Option(False, "--all", help="Include revoked keys"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """List a workspace's keys."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        table = Table("id", "kind", "name", "prefix", "scopes", "created", "revoked")
        for key in accounts_service.list_keys(db, workspace_id=ws.id, include_revoked=include_revoked):
            table.add_row(
                str(key.id),
                key.kind,
                key.name,
                key.prefix + "…",
                ",".join(key.scopes) or "-",
                key.created_at.isoformat(timespec="seconds"),
                key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
            )
        console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: int = typer.Argument(...),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Revoke a key at once."""
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = resolve_workspace(db, workspace)
        accounts_service.revoke_key(
            db, workspace_id=ws.id, key_id=key_id, actor="cli", now=runtime.clock.now()
        )
        db.commit()
        console.print(f"key {key_id} revoked")
