"""Settings pages: API keys, users and roles, the audit log. Every member may look; only admins change."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import SCOPES, Role
from rapport.accounts.service import IssuedKey
from rapport.api.deps import DbSession, ReadDbSession
from rapport.audit import service as audit_service
from rapport.errors import Conflict, NotFound, ValidationFailed
from rapport.kit.pagination import Page
from rapport.runtime import Runtime
from rapport.web.rendering import Flash, redirect, render
from rapport.web.session import UiAdminPost, UiPage, UiRoute, UiUser

router = APIRouter(prefix="/settings", route_class=UiRoute, include_in_schema=False)

ROLES = (Role.ADMIN, Role.MARKETER, Role.VIEWER)
ROLE_HELP = {
    Role.ADMIN: "everything, including keys, users and settings",
    Role.MARKETER: "customers, segments, templates and campaigns",
    Role.VIEWER: "sees every page, changes nothing",
}
AUDIT_PAGE_SIZE = 50


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def settings_tabs() -> list[tuple[str, str]]:
    """Return the settings sub-navigation as (label, href)."""
    return [
        ("API keys", "/settings/keys"),
        ("Users & roles", "/settings/users"),
        ("Audit log", "/settings/audit"),
        ("Channels & limits", "/settings/channels"),
    ]


@router.get("")
def settings_home() -> RedirectResponse:
    """Open the first settings tab."""
    return RedirectResponse("/settings/keys", status_code=303)


def _keys_page(
    request: Request,
    ui: UiUser,
    db: Any,
    *,
    show_revoked: bool = False,
    issued: IssuedKey | None = None,
    error: str = "",
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    keys = accounts_service.list_keys(db, workspace_id=ui.workspace_id, include_revoked=show_revoked)
    context = {
        "title": "API keys",
        "tabs": settings_tabs(),
        "active_tab": "/settings/keys",
        "keys": keys,
        "show_revoked": show_revoked,
        "scopes": SCOPES,
        "issued": issued,
        "error": error,
        "form": form or {"kind": "secret", "name": "", "scopes": []},
    }
    return render(request, "settings/keys.html", context, status_code=status_code)


@router.get("/keys")
def keys_page(request: Request, ui: UiPage, db: ReadDbSession, revoked: bool = False) -> Response:
    """List the workspace's keys; admins also see the form to create one."""
    return _keys_page(request, ui, db, show_revoked=revoked)


@router.post("/keys")
def create_key(
    request: Request,
    ui: UiAdminPost,
    db: DbSession,
    kind: Annotated[str, Form(max_length=10)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Issue a key and show its value on this page, this one time."""
    scopes = scopes or []
    try:
        issued = accounts_service.create_key(
            db, workspace_id=ui.workspace_id, kind=kind, name=name, scopes=scopes, actor=ui.principal.actor
        )
    except ValidationFailed as exc:
        db.rollback()
        sent = {"kind": kind, "name": name, "scopes": scopes}
        return _keys_page(request, ui, db, error=exc.message, form=sent, status_code=400)
    db.commit()
    return _keys_page(request, ui, db, issued=issued, status_code=201)


@router.post("/keys/{key_id}/revoke")
def revoke_key(request: Request, key_id: int, ui: UiAdminPost, db: DbSession) -> Response:
    """Revoke a key; it stops working at once."""
    key = accounts_service.revoke_key(
        db,
        workspace_id=ui.workspace_id,
        key_id=key_id,
        actor=ui.principal.actor,
        now=_runtime(request).clock.now(),
    )
    label = f"{key.name} ({key.prefix}…)"
    db.commit()
    return redirect(request, "/settings/keys", flash=Flash("success", f"Key {label} is revoked."))


def _users_page(
    request: Request,
    ui: UiUser,
    db: Any,
    *,
    error: str = "",
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    members = accounts_service.list_members(db, ui.workspace_id)
    context = {
        "title": "Users & roles",
        "tabs": settings_tabs(),
        "active_tab": "/settings/users",
        "members": members,
        "roles": ROLES,
        "role_help": ROLE_HELP,
        "row_message": None,
        "error": error,
        "form": form or {"email": "", "name": "", "role": Role.MARKETER.value},
    }
    return render(request, "settings/users.html", context, status_code=status_code)


@router.get("/users")
def users_page(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """List the workspace's members and their roles; admins also add users and change roles."""
    return _users_page(request, ui, db)


def _parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationFailed("choose a role: admin, marketer or viewer") from None


@router.post("/users")
def add_user(
    request: Request,
    ui: UiAdminPost,
    db: DbSession,
    email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Add a member: a new user with this password, or an existing user of another workspace."""
    sent = {"email": email, "name": name, "role": role}
    existing = False
    try:
        chosen = _parse_role(role)
        try:
            user = accounts_service.create_user(db, email=email, password=password, name=name.strip())
        except Conflict:
            existing = True
            user = accounts_service.get_or_create_user(db, email=email, password=password)
            members = accounts_service.list_members(db, ui.workspace_id)
            if any(member.user_id == user.id for member, _u in members):
                raise ValidationFailed(f"{user.email} is already a member of this workspace") from None
        accounts_service.set_role(
            db, workspace_id=ui.workspace_id, user_id=user.id, role=chosen, actor=ui.principal.actor
        )
    except ValidationFailed as exc:
        db.rollback()
        return _users_page(request, ui, db, error=exc.message, form=sent, status_code=400)
    email_shown = user.email
    db.commit()
    note = " They keep their existing password." if existing else ""
    flash = Flash("success", f"{email_shown} now has the {chosen.value} role.{note}")
    return redirect(request, "/settings/users", flash=flash)


@router.post("/users/{user_id}/role")
def change_role(
    request: Request,
    user_id: int,
    ui: UiAdminPost,
    db: DbSession,
    role: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Change a member's role (the workspace keeps at least one admin); htmx gets the table row back."""
    chosen = _parse_role(role)
    members = accounts_service.list_members(db, ui.workspace_id)
    target = next(((m, u) for m, u in members if m.user_id == user_id), None)
    if target is None:
        raise NotFound("that user is not a member of this workspace")
    membership, user = target
    admins = [m for m, _u in members if m.role == Role.ADMIN.value]
    if membership.role == Role.ADMIN.value and chosen is not Role.ADMIN and len(admins) == 1:
        message = Flash("error", "A workspace needs at least one admin: make someone else admin first.")
    else:
        if membership.role != chosen.value:
            accounts_service.set_role(
                db, workspace_id=ui.workspace_id, user_id=user_id, role=chosen, actor=ui.principal.actor
            )
            db.commit()
        message = Flash("success", f"{user.email} now has the {chosen.value} role.")
    if request.headers.get("hx-request") == "true":
        context = {"membership": membership, "user": user, "roles": ROLES, "row_message": message}
        return render(request, "settings/_member_row.html", context)
    return redirect(request, "/settings/users", flash=message)


@router.get("/audit")
def audit_page(request: Request, ui: UiPage, db: ReadDbSession, page: int = 1) -> Response:
    """Show the workspace's audit log, newest first (admins only: it names people and keys)."""
    entries: list[Any] = []
    page = max(1, min(page, 10_000))
    if ui.is_admin:
        entries = list(
            audit_service.list_entries(
                db,
                workspace_id=ui.workspace_id,
                page=Page(limit=AUDIT_PAGE_SIZE + 1, offset=(page - 1) * AUDIT_PAGE_SIZE),
            )
        )
    context = {
        "title": "Audit log",
        "tabs": settings_tabs(),
        "active_tab": "/settings/audit",
        "entries": entries[:AUDIT_PAGE_SIZE],
        "page": page,
        "has_more": len(entries) > AUDIT_PAGE_SIZE,
    }
    return render(request, "settings/audit.html", context)


@router.get("/channels")
def channels_page(request: Request, ui: UiPage) -> Response:
    """Channels, frequency caps, quiet hours and topics: filled by the delivery work."""
    context = {
        "title": "Channels & limits",
        "tabs": settings_tabs(),
        "active_tab": "/settings/channels",
    }
    return render(request, "settings/channels.html", context)
