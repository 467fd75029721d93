"""``rapport demo``: a demo workspace full of realistic synthetic customers, then serve it."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import Role
from rapport.app import wire_runtime
from rapport.cli.common import console, load_settings
from rapport.cli.server import run_server
from rapport.db import migrate
from rapport.errors import NotFound
from rapport.kit.logs import configure_logging
from rapport.runtime import build_runtime
from rapport.synth import demo as synth_demo
from rapport.synth import marketing as synth_marketing

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@rapport.local"
DEMO_PASSWORD = "rapport-demo-1"  # noqa: S105 (a published demo login for a local, loopback-only demo)


def register(app: typer.Typer) -> None:
    """Add ``rapport demo`` to the root command."""
    app.command("demo")(demo)


def demo(
    customers: int = typer.Option(5000, help="How many customers to generate"),
    seed: int = typer.Option(7, help="Seed of the generator: the same seed gives the same data"),
    database: Path = typer.Option(Path("rapport.db"), help="SQLite file of the demo"),
    fresh: bool = typer.Option(False, "--fresh", help="Delete the demo database first"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    no_serve: bool = typer.Option(False, "--no-serve", help="Generate only, do not serve"),
) -> None:
    """Create (once) a demo workspace with synthetic customers, print the login and keys, and serve it."""
    mail = database.resolve().parent / f"{database.stem}-mail"
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(mail, ignore_errors=True)
    url = f"sqlite:///{database}"
    settings = load_settings(url)
    if not settings.smtp_host and not settings.email_maildir:
        # No SMTP server given: campaigns still send, into a local Maildir the UI shows.
        settings = settings.model_copy(update={"email_maildir": str(mail)})
    configure_logging(level="WARNING", json_lines=False)
    runtime = wire_runtime(build_runtime(settings))
    migrate.upgrade(runtime.engine)
    with runtime.sessions() as db:
        try:
            workspace = accounts_service.get_workspace_by_slug(db, DEMO_SLUG)
            created = False
        except NotFound:
            workspace = accounts_service.create_workspace(db, name="Hartley & Finch (demo)", slug=DEMO_SLUG)
            created = True
        user = accounts_service.get_or_create_user(db, email=DEMO_EMAIL, password=DEMO_PASSWORD, name="Demo")
        accounts_service.set_role(
            db, workspace_id=workspace.id, user_id=user.id, role=Role.ADMIN, actor="demo"
        )
        write = accounts_service.create_key(
            db, workspace_id=workspace.id, kind="write", name="demo web", actor="demo"
        )
        secret = accounts_service.create_key(
            db, workspace_id=workspace.id, kind="secret", name="demo server", scopes=["admin"], actor="demo"
        )
        db.commit()
        workspace_id = workspace.id
    if created:
        console.print(f"Generating {customers:,} customers of a UK retailer (seed {seed}) ...")
        filled = synth_demo.fill_workspace(
            runtime, workspace_id=workspace_id, customers=customers, seed=seed, console=console
        )
        console.print(
            f"Loaded {filled.profiles:,} customers, {filled.events:,} events and {filled.consents:,} consent "
            f"statements in {filled.seconds:.1f} s "
            f"(a year of activity up to {filled.reference_date:%Y-%m-%d})"
        )
        marketing = synth_marketing.seed_marketing(runtime, workspace_id=workspace_id)
        console.print(
            f"Set up {marketing.segments} segments, {marketing.templates} templates and {marketing.campaigns} "
            "campaigns (three live triggers, one broadcast drafted as an A/B test)"
        )
    runtime.close()
    console.rule("Rapport demo")
    console.print(
        f"UI:         http://{host}:{port}  login [bold]{DEMO_EMAIL}[/bold] / [bold]{DEMO_PASSWORD}[/bold]"
    )
    console.print(f"Write key:  {write.plain}   (HTTP Basic username, for /v1/track etc.)")
    console.print(f"Secret key: {secret.plain}   (Authorization: Bearer, for /api/v1)")
    console.print(f"Database:   {database}")
    if settings.email_maildir and not settings.smtp_host:
        console.print(
            f"Email:      captured in {settings.email_maildir} (no SMTP server set): see Settings → Channels → "
            "Captured mail, or open the Maildir with any mail client"
        )
    elif settings.smtp_host:
        console.print(f"Email:      sent through {settings.smtp_host}:{settings.smtp_port}")
    if not no_serve:
        run_server(settings.model_copy(update={"host": host, "port": port}))
