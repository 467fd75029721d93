"""``rapport campaigns list|create|show|launch|pause|resume|cancel|stats``: campaigns from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from rapport.campaigns import measure
from rapport.campaigns import service as campaigns_service
from rapport.campaigns.schemas import CampaignCreate
from rapport.cli.common import (
    DatabaseOption,
    WorkspaceOption,
    cli_runtime,
    console,
    err_console,
    resolve_workspace,
)
from rapport.errors import RapportError

campaigns_app = typer.Typer(
    help="Campaigns: create, launch, pause, cancel and read results.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``campaigns`` command group to the root command."""
    app.add_typer(campaigns_app, name="campaigns")


def _fail(message: str) -> None:
    err_console.print(f"[red]error[/red]: {message}", markup=False, highlight=False)
    raise typer.Exit(1)


@campaigns_app.command("list")
def list_campaigns(
    include_archived: bool = typer.Option(False, "--all", help="Include archived campaigns"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """List campaigns, newest first."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        table = Table("id", "name", "kind", "channel", "status", "audience", "winner")
        for c in campaigns_service.list_campaigns(db, workspace_id=ws.id, include_archived=include_archived):
            table.add_row(
                str(c.id),
                c.name,
                c.kind,
                c.channel,
                c.status,
                str(c.audience_size or ""),
                c.winner_variant or "",
            )
        console.print(table)


@campaigns_app.command("create")
def create(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="A JSON file shaped like the API's body"
    ),
    launch: bool = typer.Option(False, "--launch", help="Launch it straight away"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Create a campaign from a JSON file (the body of POST /api/v1/campaigns)."""
    try:
        data = CampaignCreate.model_validate(json.loads(file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as exc:
        _fail(f"{file}: {exc}")
        return
    with cli_runtime(database_url) as runtime, runtime.sessions() as db:
        ws = resolve_workspace(db, workspace)
        try:
            campaign = campaigns_service.create_campaign(
                db, workspace_id=ws.id, data=data, actor="cli", now=runtime.clock.now()
            )
            if launch:
                campaigns_service.do_launch(
                    db, workspace_id=ws.id, campaign_id=campaign.id, actor="cli", now=runtime.clock.now()
                )
        except RapportError as exc:
            _fail(exc.message)
            return
        db.commit()
        console.print(f"campaign {campaign.id} {campaign.name!r}: {campaign.status}")


def _lifecycle(verb: str, action: campaigns_service.Action) -> None:
    def command(
        campaign_id: int = typer.Argument(...),
        workspace: str = WorkspaceOption,
        database_url: str = DatabaseOption,
    ) -> None:
        with cli_runtime(database_url) as runtime, runtime.sessions() as db:
            ws = resolve_workspace(db, workspace)
            try:
                campaign = action.do(
                    db, workspace_id=ws.id, campaign_id=campaign_id, actor="cli", now=runtime.clock.now()
                )
            except RapportError as exc:
                _fail(exc.message)
                return
            db.commit()
            console.print(f"campaign {campaign.id} {campaign.name!r}: {campaign.status}")

    command.__doc__ = action.summary
    campaigns_app.command(verb)(command)


for _verb, _action in campaigns_service.ACTIONS.items():
    _lifecycle(_verb, _action)


@campaigns_app.command("stats")
def stats(
    campaign_id: int = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON"),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Show results per arm and for the control group, with lift and 95 % intervals."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        try:
            campaign = campaigns_service.get_campaign(db, workspace_id=ws.id, campaign_id=campaign_id)
        except RapportError as exc:
            _fail(exc.message)
            return
        result = measure.campaign_stats(db, campaign=campaign)
    if as_json:
        console.print_json(result.model_dump_json())
        return
    table = Table(
        "arm", "recipients", "sent", "opened", "clicked", "conversions", "rate", "revenue", "lift (95% CI)"
    )
    for arm in [*result.arms, *([result.control] if result.control else [])]:
        lift = ""
        if arm.lift is not None and arm.lift_interval is not None:
            lift = f"{arm.lift:+.2%} ({arm.lift_interval.low:+.2%} … {arm.lift_interval.high:+.2%})"
        table.add_row(
            arm.name,
            str(arm.recipients),
            str(arm.sent),
            str(arm.opened),
            str(arm.clicked),
            str(arm.conversions),
            f"{arm.conversion_rate:.2%}",
            f"{arm.revenue:,.2f}",
            lift,
        )
    console.print(table)
    console.print(
        f"{campaign.name}: {result.status}; {result.messages} messages, {result.conversions} conversions, "
        f"revenue {result.revenue:,.2f}" + (f", ROI {result.roi:.1f}x" if result.roi is not None else "")
    )
