"""``rapport templates validate|preview``: check a template file or a saved template, render it for someone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.orm import Session

from rapport.cli.common import (
    DatabaseOption,
    WorkspaceOption,
    cli_runtime,
    console,
    err_console,
    resolve_workspace,
)
from rapport.content import repository as content_repository
from rapport.content import service as content_service
from rapport.content.rendering import TemplateDraft
from rapport.content.schemas import PreviewBody, ValidateBody
from rapport.content.validation import ContentReport
from rapport.errors import NotFound
from rapport.models import MessageTemplate

templates_app = typer.Typer(help="Message templates: validate and preview.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``templates`` command group to the root command."""
    app.add_typer(templates_app, name="templates")


def _saved(db: Session, workspace_id: int, which: str) -> MessageTemplate:
    found = (
        content_repository.get_template(db, workspace_id=workspace_id, template_id=int(which))
        if which.isdigit()
        else content_repository.template_by_name(db, workspace_id=workspace_id, name=which)
    )
    if found is None:
        raise NotFound(f"no template {which!r}")
    return found


def _draft(db: Session, workspace_id: int, which: str) -> TemplateDraft:
    """A JSON file shaped like the API's body ({channel, content, blocks}), or a saved template's id/name."""
    path = Path(which)
    if path.suffix == ".json" and path.is_file():
        body = ValidateBody.model_validate(json.loads(path.read_text(encoding="utf-8")))
        return content_service.draft_of(None, channel=body.channel, content=body.content, blocks=body.blocks)
    return TemplateDraft.of(_saved(db, workspace_id, which))


def _print_report(report: ContentReport) -> None:
    for issue in (*report.errors, *report.warnings):
        where = f"{issue.part}" + (f":{issue.line}:{issue.column}" if issue.line is not None else "")
        colour = "red" if issue.severity == "error" else "yellow"
        err_console.print(f"[{colour}]{issue.severity}[/{colour}] {where} {issue.message}", highlight=False)


@templates_app.command("validate")
def validate(
    template: str = typer.Argument(
        ..., help="A saved template's id or name, or a JSON file {channel, content, blocks}"
    ),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Check a template as saving would: errors (exit 1) and warnings with their part, line and column."""
    with cli_runtime(database_url) as _runtime, _runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        draft = _draft(db, ws.id, template)
        report = content_service.check_template(
            db, workspace_id=ws.id, channel=draft.channel, content=draft.content, blocks=draft.blocks
        )
        _print_report(report)
        console.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
        if report.errors:
            raise typer.Exit(1)


@templates_app.command("preview")
def preview(
    template: str = typer.Argument(..., help="A saved template's id or name, or a JSON file"),
    profile_id: int = typer.Option(None, "--profile-id"),
    email: str = typer.Option(None, "--email"),
    user_id: str = typer.Option(None, "--user-id"),
    segment_id: int = typer.Option(None, "--segment-id", help="Render for random members of this segment"),
    sample: int = typer.Option(5, "--sample", min=1, max=20),
    workspace: str = WorkspaceOption,
    database_url: str = DatabaseOption,
) -> None:
    """Render a template for a profile (or a segment sample) and print the result as JSON."""
    with cli_runtime(database_url) as runtime, runtime.read_sessions() as db:
        ws = resolve_workspace(db, workspace)
        draft = _draft(db, ws.id, template)
        body = PreviewBody(
            profile_id=profile_id, email=email, user_id=user_id, segment_id=segment_id, sample=sample
        )
        result = content_service.preview(
            db, workspace_id=ws.id, draft=draft, body=body, now=runtime.clock.now()
        )
        shown: list[dict[str, Any]] = [item.model_dump(mode="json") for item in result.items]
        console.print_json(json.dumps(shown))
        if any(not item.ok for item in result.items):
            raise typer.Exit(1)
