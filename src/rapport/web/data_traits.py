"""Data › Computed traits: the definitions (built-in and custom), a form to create or edit one, archive and
restore, and a recompute of every stored trait (the ``process.recompute`` job). Every member may look; only
admins change (the API asks ``settings:write`` for the same). Changes are audited here."""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from rapport.api.deps import DbSession
from rapport.audit import service as audit_service
from rapport.errors import Conflict, ValidationFailed
from rapport.models import ComputedTrait
from rapport.process import computed as computed_rules
from rapport.process import traits_service
from rapport.runtime import Runtime
from rapport.web.form_limits import Limit, too_long
from rapport.web.rendering import Flash, redirect, render
from rapport.web.session import UiAdminPost, UiPage, UiRoute, UiUser
from rapport.worker import queue

router = APIRouter(prefix="/data/traits", route_class=UiRoute, include_in_schema=False)

_CONDITION_RE = re.compile(r"^\s*(\S+)\s+(!=|>=|<=|=|>|<|in|contains)\s+(.+?)\s*$")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _literal(text: str) -> Any:
    """A condition value: ``"quoted"`` stays text, a number or true/false is typed, anything else is text."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        number = json.loads(text)
    except ValueError:
        return text
    return number if isinstance(number, int | float) else text


def parse_conditions(text: str) -> list[dict[str, Any]]:
    """Read one condition a line, ``property op value`` (``in`` takes comma-separated values)."""
    out: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        found = _CONDITION_RE.match(line)
        if found is None:
            raise ValidationFailed(
                f"condition line {number}: write it as property, operator, value (e.g. channel = web)"
            )
        prop, op, raw = found.groups()
        value: Any = [_literal(v) for v in raw.split(",") if v.strip()] if op == "in" else _literal(raw)
        out.append({"property": prop, "op": op, "value": value})
    return out


def format_conditions(conditions: list[dict[str, Any]] | None) -> str:
    """Write stored conditions back as the form's lines."""
    lines = []
    for cond in conditions or []:
        value = cond.get("value")
        shown = ", ".join(_shown(v) for v in value) if isinstance(value, list) else _shown(value)
        lines.append(f"{cond.get('property')} {cond.get('op', '=')} {shown}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and (value in ("true", "false") or _literal(value) != value):
        return f'"{value}"'
    return str(value)


def describe(row: ComputedTrait) -> str:
    """Say in words what a definition computes (``sum of $value over $purchase, last 90 days``)."""
    what = row.aggregation.replace("_", " ")
    if row.property:
        what += f" of {row.property}"
    event = {"*": "any event", "$purchase": "purchases"}.get(row.event, row.event)
    text = f"{what} over {event}"
    if row.conditions:
        text += " where " + " and ".join(
            f"{c.get('property')} {c.get('op', '=')} {c.get('value')}" for c in row.conditions
        )
    if row.window_days:
        text += f", last {row.window_days} days"
    return text


def _last_runs(db: Session, workspace_id: int) -> tuple[Any, dict[str, Any]]:
    """The newest recompute of everything, and per trait name the newest job that covered it."""
    jobs = queue.list_jobs(db, kind=traits_service.RECOMPUTE_JOB, workspace_id=workspace_id, limit=200)
    latest_all = next((j for j in jobs if not j.payload.get("names")), None)
    per_name: dict[str, Any] = {}
    for job in jobs:  # newest first
        for name in job.payload.get("names") or []:
            per_name.setdefault(name, job)
    if latest_all is not None:
        for name in list(per_name):
            if per_name[name].id < latest_all.id:
                per_name[name] = latest_all
    return latest_all, per_name


def _list_page(request: Request, ui: UiUser, db: Session, *, archived: bool) -> Response:
    rows = traits_service.list_definitions(db, workspace_id=ui.workspace_id, include_archived=archived)
    if archived:
        rows = [r for r in rows if r.archived_at is not None]
    latest_all, per_name = _last_runs(db, ui.workspace_id)
    context = {
        "title": "Computed traits",
        "rows": [{"row": r, "what": describe(r), "run": per_name.get(r.name, latest_all)} for r in rows],
        "archived": archived,
        "latest": latest_all,
        "running": latest_all is not None and latest_all.status in (queue.QUEUED, queue.RUNNING),
    }
    return render(request, "data/traits.html", context)


@router.get("")
def traits_page(request: Request, ui: UiPage, db: DbSession, archived: bool = False) -> Response:
    """The definitions with what each computes and its last recompute (built-ins are created on first use)."""
    if traits_service.ensure_builtins(db, workspace_id=ui.workspace_id, now=_runtime(request).clock.now()):
        db.commit()
    return _list_page(request, ui, db, archived=archived)


@router.post("/recompute")
def recompute(request: Request, ui: UiAdminPost, db: DbSession) -> Response:
    """Queue a recompute of every stored trait for every profile (one at a time: a queued one is reused)."""
    now = _runtime(request).clock.now()
    pending = [
        j
        for status in (queue.QUEUED, queue.RUNNING)
        for j in queue.list_jobs(
            db, kind=traits_service.RECOMPUTE_JOB, workspace_id=ui.workspace_id, status=status, limit=50
        )
        if not j.payload.get("names")
    ]
    if pending:
        return redirect(
            request, "/data/traits", flash=Flash("info", "A recompute is already queued or running.")
        )
    job_id = queue.enqueue(
        db,
        kind=traits_service.RECOMPUTE_JOB,
        workspace_id=ui.workspace_id,
        payload={"names": None, "requested_by": ui.principal.actor},
        dedupe_key=f"{traits_service.RECOMPUTE_JOB}:{ui.workspace_id}:all:{uuid.uuid4().hex}",
        max_attempts=3,
        now=now,
    )
    audit_service.record(
        db,
        workspace_id=ui.workspace_id,
        actor=ui.principal.actor,
        action="computed_trait.recompute_requested",
        target_type="job",
        target_id=job_id or "",
    )
    db.commit()
    flash = Flash("success", "Recompute queued: every stored trait is rebuilt from the events.")
    return redirect(request, "/data/traits", flash=flash)


def _form_page(
    request: Request,
    ui: UiUser,
    *,
    row: ComputedTrait | None,
    form: dict[str, str],
    error: str = "",
    status_code: int = 200,
) -> Response:
    context = {
        "title": f"Computed trait {row.name}" if row else "New computed trait",
        "row": row,
        "form": form,
        "error": error,
        "aggregations": computed_rules.AGGREGATIONS,
        "needs_property": sorted(computed_rules.NEEDS_PROPERTY),
        "operators": computed_rules.OPERATORS,
    }
    return render(request, "data/trait_form.html", context, status_code=status_code)


def _form_of(row: ComputedTrait | None) -> dict[str, str]:
    if row is None:
        return {
            "name": "",
            "description": "",
            "event": "",
            "aggregation": "count",
            "property": "",
            "window_days": "",
            "conditions": "",
        }
    return {
        "name": row.name,
        "description": row.description,
        "event": row.event,
        "aggregation": row.aggregation,
        "property": row.property or "",
        "window_days": str(row.window_days or ""),
        "conditions": format_conditions(row.conditions),
    }


def _window(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValidationFailed("the window is a whole number of days (or empty for all time)")
    return int(text)


#: The form's fields, what the page calls them, and their longest allowed length.
_LIMITS: tuple[Limit, ...] = (
    ("name", "The name", 100),
    ("description", "The description", 500),
    ("event", "The event", 200),
    ("aggregation", "The aggregation", 40),
    ("property", "The property", 200),
    ("window_days", "The window", 10),
    ("conditions", "The conditions", 5000),
)


@router.get("/new")
def new_trait_page(request: Request, ui: UiPage) -> Response:
    """The form for a new computed trait."""
    return _form_page(request, ui, row=None, form=_form_of(None))


@router.post("/new")
def create_trait(
    request: Request,
    ui: UiAdminPost,
    db: DbSession,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    event: Annotated[str, Form()] = "",
    aggregation: Annotated[str, Form()] = "",
    property: Annotated[str, Form()] = "",
    window_days: Annotated[str, Form()] = "",
    conditions: Annotated[str, Form()] = "",
) -> Response:
    """Create a definition; its backfill runs in the background. Errors re-render the form."""
    sent = {
        "name": name.strip(),
        "description": description.strip(),
        "event": event.strip(),
        "aggregation": aggregation,
        "property": property.strip(),
        "window_days": window_days,
        "conditions": conditions,
    }
    if problem := too_long(sent, _LIMITS):
        return _form_page(request, ui, row=None, form=sent, error=problem, status_code=400)
    try:
        row = traits_service.create_definition(
            db,
            workspace_id=ui.workspace_id,
            name=sent["name"],
            event=sent["event"],
            aggregation=aggregation,
            property=sent["property"] or None,
            conditions=parse_conditions(conditions),
            window_days=_window(window_days),
            description=sent["description"],
            now=_runtime(request).clock.now(),
        )
    except (ValidationFailed, Conflict) as exc:
        db.rollback()
        return _form_page(request, ui, row=None, form=sent, error=exc.message, status_code=400)
    _audit(db, ui, "computed_trait.created", row)
    db.commit()
    flash = Flash("success", f"Computed trait {row.name} is saved; its values are being computed.")
    return redirect(request, "/data/traits", flash=flash)


def _audit(db: Session, ui: UiUser, action: str, row: ComputedTrait) -> None:
    audit_service.record(
        db,
        workspace_id=ui.workspace_id,
        actor=ui.principal.actor,
        action=action,
        target_type="computed_trait",
        target_id=row.id,
        details={"name": row.name, "version": row.version, "what": describe(row)},
    )


@router.get("/{trait_id}")
def edit_trait_page(request: Request, trait_id: int, ui: UiPage, db: DbSession) -> Response:
    """One definition: its form (admins save, others read)."""
    row = traits_service.get_definition(db, workspace_id=ui.workspace_id, trait_id=trait_id)
    return _form_page(request, ui, row=row, form=_form_of(row))


@router.post("/{trait_id}")
def update_trait(
    request: Request,
    trait_id: int,
    ui: UiAdminPost,
    db: DbSession,
    description: Annotated[str, Form()] = "",
    event: Annotated[str, Form()] = "",
    aggregation: Annotated[str, Form()] = "",
    property: Annotated[str, Form()] = "",
    window_days: Annotated[str, Form()] = "",
    conditions: Annotated[str, Form()] = "",
) -> Response:
    """Change a definition; a change of what it computes re-runs its backfill."""
    row = traits_service.get_definition(db, workspace_id=ui.workspace_id, trait_id=trait_id)
    sent = {
        "name": row.name,
        "description": description.strip(),
        "event": event.strip(),
        "aggregation": aggregation,
        "property": property.strip(),
        "window_days": window_days,
        "conditions": conditions,
    }
    if problem := too_long(sent, _LIMITS):
        return _form_page(request, ui, row=row, form=sent, error=problem, status_code=400)
    before = row.version
    try:
        row = traits_service.update_definition(
            db,
            workspace_id=ui.workspace_id,
            trait_id=trait_id,
            changes={
                "description": sent["description"],
                "event": sent["event"],
                "aggregation": aggregation,
                "property": sent["property"] or None,
                "conditions": parse_conditions(conditions),
                "window_days": _window(window_days),
            },
            now=_runtime(request).clock.now(),
        )
    except ValidationFailed as exc:
        db.rollback()
        row = traits_service.get_definition(db, workspace_id=ui.workspace_id, trait_id=trait_id)
        return _form_page(request, ui, row=row, form=sent, error=exc.message, status_code=400)
    recomputing = row.version != before
    _audit(db, ui, "computed_trait.updated", row)
    db.commit()
    text = f"Computed trait {row.name} is saved" + (
        "; its values are being recomputed." if recomputing else "."
    )
    return redirect(request, "/data/traits", flash=Flash("success", text))


@router.post("/{trait_id}/archive")
def archive_trait(request: Request, trait_id: int, ui: UiAdminPost, db: DbSession) -> Response:
    """Archive a definition (its stored values are removed in the background)."""
    row = traits_service.archive_definition(
        db, workspace_id=ui.workspace_id, trait_id=trait_id, now=_runtime(request).clock.now()
    )
    _audit(db, ui, "computed_trait.archived", row)
    db.commit()
    return redirect(
        request, "/data/traits", flash=Flash("success", f"Computed trait {row.name} is archived.")
    )


@router.post("/{trait_id}/restore")
def restore_trait(request: Request, trait_id: int, ui: UiAdminPost, db: DbSession) -> Response:
    """Bring an archived definition back (its values are recomputed)."""
    row = traits_service.update_definition(
        db, workspace_id=ui.workspace_id, trait_id=trait_id, changes={}, now=_runtime(request).clock.now()
    )
    _audit(db, ui, "computed_trait.restored", row)
    db.commit()
    return redirect(request, "/data/traits", flash=Flash("success", f"Computed trait {row.name} is back."))
