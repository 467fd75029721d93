"""``rapport serve``, ``rapport worker`` and ``rapport migrate``."""

from __future__ import annotations

import signal
import threading

import typer
import uvicorn

from rapport.app import WORKER_ROLES, build_worker, create_app, parse_roles
from rapport.cli import processes as api_processes
from rapport.cli.common import DatabaseOption, cli_runtime, console, load_settings
from rapport.config import Settings
from rapport.db import migrate
from rapport.db.engine import is_sqlite
from rapport.kit.gcwork import freeze_startup_heap
from rapport.kit.logs import configure_logging
from rapport.runtime import build_runtime


def register(app: typer.Typer) -> None:
    """Add the server commands to the root command."""
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("migrate")(migrate_cmd)


def serve(
    host: str = typer.Option(None, help="Address to bind (default 127.0.0.1)"),
    port: int = typer.Option(None, help="Port (default 8000)"),
    database_url: str = DatabaseOption,
    no_worker: bool = typer.Option(False, "--no-worker", help="Do not run the worker in this process"),
    processes: int = typer.Option(
        None,
        "--processes",
        min=0,
        max=64,
        help="API processes sharing the port (Linux; 0: one per core; default RAPPORT_API_PROCESSES or 1); "
        "the in-process worker runs in the first",
    ),
) -> None:
    """Serve the API and marketer UI, with an in-process worker; migrates the embedded database first."""
    settings = load_settings(database_url)
    updates: dict[str, object] = {}
    if host:
        updates["host"] = host
    if port:
        updates["port"] = port
    if no_worker:
        updates["run_worker_in_process"] = False
    if processes is not None:
        updates["api_processes"] = processes
    run_server(settings.model_copy(update=updates))


def run_server(settings: Settings) -> None:
    """Migrate the embedded database (or check PostgreSQL is at head) and serve until interrupted."""
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    runtime = build_runtime(settings)
    if is_sqlite(settings.database_url):
        migrate.upgrade(runtime.engine)
    elif not migrate.is_up_to_date(runtime.engine):
        console.print("[red]The PostgreSQL schema is not at head: run `rapport migrate` first.[/red]")
        raise typer.Exit(1)
    count = api_processes.resolve_count(settings.api_processes)
    if count > 1:
        runtime.close()
        url = f"http://{settings.host}:{settings.port}"
        try:
            supervisor = api_processes.Supervisor(settings, count)
            api_processes.run(
                supervisor, lambda: console.print(f"Rapport on {url}  ({count} processes; API docs at /docs)")
            )
        except api_processes.ProcessesError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        return
    application = create_app(settings, runtime=runtime)
    console.print(f"Rapport on http://{settings.host}:{settings.port}  (API docs at /docs)")
    uvicorn.run(application, host=settings.host, port=settings.port, log_config=None, access_log=False)


def worker(
    database_url: str = DatabaseOption,
    once: bool = typer.Option(False, "--once", help="Run what is due, then exit"),
    role: list[str] = typer.Option(
        list(WORKER_ROLES),
        "--role",
        envvar="RAPPORT_WORKER_ROLES",
        help="What this worker runs (repeat, or separate with commas): events (the event processor), "
        "delivery (the outbox), jobs (queued jobs, campaign schedules, segment refreshes, nightly scores)",
    ),
) -> None:
    """Run the background worker in this process (production: several, against one PostgreSQL)."""
    try:
        roles = parse_roles(role)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from exc
    settings = load_settings(database_url)
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    runtime = build_runtime(settings)
    runner = build_worker(runtime, roles)
    if once:
        ran = runner.drain()
        console.print(f"ran {ran} jobs")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    freeze_startup_heap()  # full collections stop walking the modules and the app (see kit.gcwork)
    console.print(f"worker {runner.worker_id} ({', '.join(sorted(roles))}) polling")
    runner.run_forever(stop)


def migrate_cmd(database_url: str = DatabaseOption) -> None:
    """Apply Alembic migrations up to head."""
    with cli_runtime(database_url) as runtime:
        before = migrate.current_revision(runtime.engine)
        migrate.upgrade(runtime.engine)
        after = migrate.current_revision(runtime.engine)
    console.print(f"schema at {after} (was {before or 'empty'})")
