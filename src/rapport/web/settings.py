"""Settings pages: API keys, users and roles, the audit log, channels, frequency caps and quiet hours, topics.

Every member may look; only admins change, and every change is audited. Caps and quiet hours are written to
``Workspace.settings`` under the keys the Deliverer reads (``caps``: :func:`rapport.messaging.caps.caps_from_settings`;
``quiet_hours``: :func:`rapport.messaging.quiet_hours.window_for`), the sender under ``email``.
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import SCOPES, Role
from rapport.accounts.service import IssuedKey
from rapport.api.deps import DbSession, ReadDbSession
from rapport.audit import service as audit_service
from rapport.channels import maildir
from rapport.channels.push import load_vapid
from rapport.consent import service as consent_service
from rapport.errors import Conflict, NotFound, ValidationFailed
from rapport.kit.pagination import Page
from rapport.messaging import caps as caps_rules
from rapport.messaging import quiet_hours as quiet_rules
from rapport.messaging import tracking
from rapport.messaging.delivery import channels_of
from rapport.models import Workspace
from rapport.runtime import Runtime
from rapport.web.rendering import SECURITY_HEADERS, Flash, redirect, render
from rapport.web.session import UiAdminPost, UiPage, UiRoute, UiUser

router = APIRouter(prefix="/settings", route_class=UiRoute, include_in_schema=False)

ROLES = (Role.ADMIN, Role.MARKETER, Role.VIEWER)
ROLE_HELP = {
    Role.ADMIN: "everything, including keys, users and settings",
    Role.MARKETER: "customers, segments, templates and campaigns",
    Role.VIEWER: "sees every page, changes nothing",
}
AUDIT_PAGE_SIZE = 50
CAPTURED_PAGE_SIZE = 50


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def settings_tabs() -> list[tuple[str, str]]:
    """Return the settings sub-navigation as (label, href)."""
    return [
        ("API keys", "/settings/keys"),
        ("Users & roles", "/settings/users"),
        ("Audit log", "/settings/audit"),
        ("Channels", "/settings/channels"),
        ("Caps & quiet hours", "/settings/limits"),
        ("Topics", "/settings/topics"),
        ("Stores", "/settings/stores"),
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
    if kind not in {"write", "secret"}:  # the form offers these two only
        sent = {"kind": kind, "name": name, "scopes": scopes}
        error = "Kind: choose a write key (sends events) or a secret key (scoped API access)."
        return _keys_page(request, ui, db, error=error, form=sent, status_code=400)
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


# -- channels, caps, quiet hours, topics -------------------------------------------------------------------

CHANNELS = ("email", "sms", "push", "inapp", "webhook")
CHANNEL_LABELS = {
    "email": "Email",
    "sms": "SMS",
    "push": "Web push",
    "inapp": "In-app inbox",
    "webhook": "Webhook",
    caps_rules.ALL_CHANNELS: "All channels together",
}
MAX_CAP = 10_000
_EMAIL_RE = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]{2,}$")
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def vapid_public_key(private_key: str) -> str:
    """Return the application server key browsers subscribe with (base64url), or '' when unreadable."""
    try:
        vapid = load_vapid(private_key)
        public = vapid.public_key  # type: ignore[attr-defined]
        raw = public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    except Exception:
        return ""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def channel_status(runtime: Runtime) -> list[dict[str, Any]]:
    """Describe each channel as the server's settings configure it (no secret is ever included)."""
    cfg = runtime.settings
    registered = set(channels_of(runtime))
    sms_from = cfg.sms_from
    sms_ready = bool(cfg.twilio_account_sid and cfg.twilio_auth_token and sms_from)
    rows: list[dict[str, Any]] = [
        _email_status(runtime),
        {
            "name": "sms",
            "configured": sms_ready,
            "facts": [
                ("Provider API", cfg.twilio_base_url if sms_ready else ""),
                ("From", sms_from if sms_from and not sms_from.startswith("MG") else ""),
                ("Messaging service", sms_from if sms_from.startswith("MG") else ""),
            ],
            "env": "RAPPORT_TWILIO_BASE_URL, RAPPORT_TWILIO_ACCOUNT_SID, RAPPORT_TWILIO_AUTH_TOKEN, RAPPORT_SMS_FROM",
        },
        {
            "name": "push",
            "configured": bool(cfg.vapid_private_key and cfg.vapid_subject),
            "facts": [
                (
                    "VAPID public key",
                    vapid_public_key(cfg.vapid_private_key) if cfg.vapid_private_key else "",
                ),
                ("Contact", cfg.vapid_subject),
            ],
            "env": "RAPPORT_VAPID_PRIVATE_KEY, RAPPORT_VAPID_SUBJECT",
        },
        {
            "name": "webhook",
            "configured": bool(cfg.webhook_secret),
            "facts": [
                ("Signing secret", "set" if cfg.webhook_secret else ""),
                ("Allowed hosts", ", ".join(cfg.webhook_allowed_hosts) or "any public host"),
            ],
            "env": "RAPPORT_WEBHOOK_SECRET, RAPPORT_WEBHOOK_ALLOWED_HOSTS",
        },
        {"name": "inapp", "configured": True, "facts": [("Inbox", "always on")], "env": ""},
    ]
    for row in rows:
        row["label"] = CHANNEL_LABELS[row["name"]]
        row["registered"] = row["name"] in registered
    return rows


def _email_status(runtime: Runtime) -> dict[str, Any]:
    cfg = runtime.settings
    env = "RAPPORT_SMTP_HOST, RAPPORT_SMTP_PORT, RAPPORT_SMTP_SECURITY, RAPPORT_SMTP_USERNAME/PASSWORD"
    if cfg.email_maildir and not cfg.smtp_host:
        count, _latest = maildir.captured(cfg.email_maildir, limit=0)
        return {
            "name": "email",
            "configured": True,
            "facts": [
                ("SMTP server", "none: email is captured, not sent"),
                ("Maildir", cfg.email_maildir),
                ("Captured", f"{count:,} message{'s' if count != 1 else ''}"),
            ],
            "env": env,
            "captured_link": "/settings/mail",
        }
    return {
        "name": "email",
        "configured": bool(cfg.smtp_host),
        "facts": [
            ("SMTP server", f"{cfg.smtp_host}:{cfg.smtp_port}" if cfg.smtp_host else ""),
            ("Security", cfg.smtp_security),
            ("Login", "yes (user and password set)" if cfg.smtp_username else "none"),
        ],
        "env": env + " (or RAPPORT_EMAIL_MAILDIR to capture email in a local folder)",
    }


def _maildir_path(request: Request) -> str:
    """The Maildir email is captured in, or '' when this server sends through SMTP or has no email."""
    cfg = _runtime(request).settings
    return cfg.email_maildir if cfg.email_maildir and not cfg.smtp_host else ""


@router.get("/mail")
def captured_mail(request: Request, ui: UiPage) -> Response:
    """The newest email captured in the local Maildir (the demo's mail catcher)."""
    path = _maildir_path(request)
    count, latest = maildir.captured(path, limit=CAPTURED_PAGE_SIZE) if path else (0, [])
    context = {
        "title": "Captured mail",
        "tabs": settings_tabs(),
        "active_tab": "/settings/channels",
        "path": path,
        "count": count,
        "messages": latest,
    }
    return render(request, "settings/mail.html", context)


#: The captured email's own document: no script, nothing fetched from anywhere (so no tracking pixel, even
#: one :func:`rapport.messaging.tracking.strip_tracking` did not recognise), only its inline styles and
#: ``data:`` images; sandboxed even when opened on its own, and framed only by our own pages.
CAPTURED_HTML_CSP = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


def _captured(request: Request, key: str) -> maildir.Captured:
    path = _maildir_path(request)
    found = maildir.captured_message(path, key) if path else None
    if found is None:
        raise NotFound("no such captured message")
    return found


@router.get("/mail/{key}")
def captured_mail_message(request: Request, key: str, ui: UiPage) -> Response:
    """One captured email: its headers, the HTML part in a sandboxed frame, and the text part."""
    found = _captured(request, key)
    context = {
        "title": found.subject or "Captured message",
        "tabs": settings_tabs(),
        "active_tab": "/settings/channels",
        "message": found,
    }
    return render(request, "settings/mail_message.html", context)


@router.get("/mail/{key}/html")
def captured_mail_html(request: Request, key: str, ui: UiPage) -> Response:
    """The HTML part of a captured email, as the page's frame shows it: staff looking record no engagement.

    Looking at a campaign email here must never count as its customer opening it or clicking in it, and the
    Maildir holds the email exactly as delivered, tracking pixel and tracked links included. So the frame
    gets the HTML through :func:`~rapport.messaging.tracking.strip_tracking` (no pixel; each link shows and
    goes to its real destination) and as a document of its own under :data:`CAPTURED_HTML_CSP`, which lets
    it load nothing from the network: a tracking URL in a shape the rewrite does not know is still never
    fetched. The page around it keeps the strict UI policy (no inline styles there). The email in the
    Maildir is not changed.
    """
    found = _captured(request, key)
    shown = tracking.strip_tracking(found.html, secret=_runtime(request).secret_key)
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": CAPTURED_HTML_CSP,
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "no-referrer",
    }
    return HTMLResponse(shown, headers=headers)


def _workspace_for_update(db: Session, workspace_id: int) -> Workspace:
    workspace = db.get(Workspace, workspace_id, with_for_update=True)
    if workspace is None:
        raise NotFound("workspace not found")
    return workspace


def _save_setting(db: Session, ui: UiUser, key: str, value: Any, action: str) -> None:
    """Replace one top-level key of the workspace's settings (row locked) and audit before/after."""
    workspace = _workspace_for_update(db, ui.workspace_id)
    settings = dict(workspace.settings or {})
    before = settings.get(key)
    if value is None or value == {}:
        settings.pop(key, None)
    else:
        settings[key] = value
    workspace.settings = settings
    audit_service.record(
        db,
        workspace_id=ui.workspace_id,
        actor=ui.principal.actor,
        action=action,
        target_type="workspace",
        target_id=ui.workspace_id,
        details={"before": before, "after": settings.get(key)},
    )


def _sender_of(settings: dict[str, Any] | None) -> dict[str, str]:
    email = (settings or {}).get("email") or {}
    return {
        "from_name": str(email.get("from_name") or ""),
        "from_address": str(email.get("from_address") or ""),
    }


def _channels_page(
    request: Request,
    ui: UiUser,
    db: Session,
    *,
    form: dict[str, str] | None = None,
    error: str = "",
    status_code: int = 200,
) -> Response:
    runtime = _runtime(request)
    workspace = accounts_service.get_workspace(db, ui.workspace_id)
    context = {
        "title": "Channels",
        "tabs": settings_tabs(),
        "active_tab": "/settings/channels",
        "channels": channel_status(runtime),
        "sender": form or _sender_of(workspace.settings),
        "default_address": runtime.settings.email_from,
        "default_name": workspace.name,
        "error": error,
    }
    return render(request, "settings/channels.html", context, status_code=status_code)


@router.get("/channels")
def channels_page(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """Which channels the server is configured for (never a secret) and the workspace's email sender."""
    return _channels_page(request, ui, db)


@router.post("/channels/email")
def save_sender(
    request: Request,
    ui: UiAdminPost,
    db: DbSession,
    from_name: Annotated[str, Form(max_length=200)] = "",
    from_address: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    """Set the workspace's email From name and address (empty: the server's defaults)."""
    sent = {"from_name": from_name.strip(), "from_address": from_address.strip()}
    if sent["from_address"] and not _EMAIL_RE.match(sent["from_address"]):
        return _channels_page(
            request, ui, db, form=sent, error="The From address is not an email address.", status_code=400
        )
    if any(ch in sent["from_name"] for ch in '\r\n<>"'):
        return _channels_page(
            request,
            ui,
            db,
            form=sent,
            error="The From name cannot hold quotes, < > or line breaks.",
            status_code=400,
        )
    workspace = accounts_service.get_workspace(db, ui.workspace_id)
    email = dict((workspace.settings or {}).get("email") or {})
    for key, value in sent.items():
        if value:
            email[key] = value
        else:
            email.pop(key, None)
    _save_setting(db, ui, "email", email, "settings.email_sender_changed")
    db.commit()
    return redirect(request, "/settings/channels", flash=Flash("success", "The email sender is saved."))


def parse_caps(form: dict[str, str]) -> dict[str, dict[str, int]]:
    """Read ``cap_<channel>_<day|week>`` fields (``all`` for every channel together); empty means no cap."""
    caps: dict[str, dict[str, int]] = {}
    for channel in (*CHANNELS, caps_rules.ALL_CHANNELS):
        field = "all" if channel == caps_rules.ALL_CHANNELS else channel
        for per in ("day", "week"):
            text = form.get(f"cap_{field}_{per}", "").strip()
            if not text:
                continue
            if not text.isdigit() or int(text) > MAX_CAP:
                label = CHANNEL_LABELS[channel]
                raise ValidationFailed(
                    f"{label} per {per}: a whole number from 0 to {MAX_CAP:,}, or empty for no cap",
                    details={"field": f"cap_{field}_{per}"},
                )
            caps.setdefault(channel, {})[per] = int(text)
    for channel, limits in caps.items():
        day, week = limits.get("day"), limits.get("week")
        if day is not None and week is not None and day > week:
            field = "all" if channel == caps_rules.ALL_CHANNELS else channel
            raise ValidationFailed(
                f"{CHANNEL_LABELS[channel]}: {day:,} per day is more than the {week:,} per week, so the daily "
                "cap would never be reached; lower it, or raise the weekly cap",
                details={"field": f"cap_{field}_day"},
            )
    return caps


def parse_quiet_hours(form: dict[str, str]) -> dict[str, list[str] | None]:
    """Read ``quiet_<channel>_start``/``_end`` (the allowed sending window, HH:MM); both empty: any time."""
    windows: dict[str, list[str] | None] = {}
    for channel in CHANNELS:
        start = form.get(f"quiet_{channel}_start", "").strip()[:5]
        end = form.get(f"quiet_{channel}_end", "").strip()[:5]
        label = CHANNEL_LABELS[channel]
        if not start and not end:
            if quiet_rules.DEFAULT_WINDOWS.get(channel):
                windows[channel] = None  # explicitly any time, overriding the default window
            continue
        if not (_TIME_RE.match(start) and _TIME_RE.match(end)):
            raise ValidationFailed(
                f"{label}: give both times as HH:MM (24-hour), or leave both empty for any time",
                details={"field": f"quiet_{channel}_start"},
            )
        if start == end:
            raise ValidationFailed(
                f"{label}: the window starts and ends at {start}; leave both empty for any time",
                details={"field": f"quiet_{channel}_start"},
            )
        windows[channel] = [start, end]
    return windows


def _limits_form(settings: dict[str, Any] | None) -> dict[str, str]:
    form: dict[str, str] = {}
    for cap in caps_rules.caps_from_settings(settings):
        field = "all" if cap.channel == caps_rules.ALL_CHANNELS else cap.channel
        form[f"cap_{field}_{cap.per}"] = str(cap.limit)
    for channel in CHANNELS:
        window = quiet_rules.window_for(channel, settings)
        form[f"quiet_{channel}_start"] = window.start.strftime("%H:%M") if window else ""
        form[f"quiet_{channel}_end"] = window.end.strftime("%H:%M") if window else ""
    return form


def _limits_page(
    request: Request,
    ui: UiUser,
    db: Session,
    *,
    form: dict[str, str] | None = None,
    error: str = "",
    error_field: str = "",
    status_code: int = 200,
) -> Response:
    workspace = accounts_service.get_workspace(db, ui.workspace_id)
    context = {
        "title": "Caps & quiet hours",
        "tabs": settings_tabs(),
        "active_tab": "/settings/limits",
        "form": form or _limits_form(workspace.settings),
        "cap_rows": [
            ("all" if c == caps_rules.ALL_CHANNELS else c, CHANNEL_LABELS[c])
            for c in (caps_rules.ALL_CHANNELS, *CHANNELS)
        ],
        "quiet_rows": [(c, CHANNEL_LABELS[c], quiet_rules.DEFAULT_WINDOWS.get(c)) for c in CHANNELS],
        "error": error,
        "error_field": error_field,
    }
    return render(request, "settings/limits.html", context, status_code=status_code)


@router.get("/limits")
def limits_page(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """Frequency caps per channel and across channels, and the quiet hours of each channel."""
    return _limits_page(request, ui, db)


async def _form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v[:20] for k, v in form.items() if isinstance(v, str) and k.startswith(("cap_", "quiet_"))}


@router.post("/limits/caps")
async def save_caps(request: Request, ui: UiAdminPost, db: DbSession) -> Response:
    """Save the frequency caps where the Deliverer reads them (``settings["caps"]``)."""
    sent = await _form_fields(request)
    return await run_in_threadpool(_save_caps, request, ui, db, sent)


def _save_caps(request: Request, ui: UiUser, db: Session, sent: dict[str, str]) -> Response:
    try:
        caps = parse_caps(sent)
    except ValidationFailed as exc:
        merged = {**_limits_form(accounts_service.get_workspace(db, ui.workspace_id).settings), **sent}
        field = str((exc.details or {}).get("field", ""))
        return _limits_page(
            request, ui, db, form=merged, error=exc.message, error_field=field, status_code=400
        )
    _save_setting(db, ui, "caps", caps, "settings.caps_changed")
    db.commit()
    return redirect(request, "/settings/limits", flash=Flash("success", "Frequency caps are saved."))


@router.post("/limits/quiet-hours")
async def save_quiet_hours(request: Request, ui: UiAdminPost, db: DbSession) -> Response:
    """Save the sending windows where the Deliverer reads them (``settings["quiet_hours"]``)."""
    sent = await _form_fields(request)
    return await run_in_threadpool(_save_quiet_hours, request, ui, db, sent)


def _save_quiet_hours(request: Request, ui: UiUser, db: Session, sent: dict[str, str]) -> Response:
    try:
        windows = parse_quiet_hours(sent)
    except ValidationFailed as exc:
        merged = {**_limits_form(accounts_service.get_workspace(db, ui.workspace_id).settings), **sent}
        field = str((exc.details or {}).get("field", ""))
        return _limits_page(
            request, ui, db, form=merged, error=exc.message, error_field=field, status_code=400
        )
    _save_setting(db, ui, "quiet_hours", windows, "settings.quiet_hours_changed")
    db.commit()
    return redirect(request, "/settings/limits", flash=Flash("success", "Quiet hours are saved."))


def _topics_page(
    request: Request,
    ui: UiUser,
    db: Session,
    *,
    form: dict[str, Any] | None = None,
    error: str = "",
    status_code: int = 200,
) -> Response:
    context = {
        "title": "Topics",
        "tabs": settings_tabs(),
        "active_tab": "/settings/topics",
        "topics": consent_service.list_topics(db, workspace_id=ui.workspace_id),
        "form": form or {"key": "", "name": "", "description": "", "opt_in": True, "is_service": False},
        "error": error,
    }
    return render(request, "settings/topics.html", context, status_code=status_code)


@router.get("/topics")
def topics_page(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """The workspace's subscription topics; admins add them."""
    return _topics_page(request, ui, db)


@router.post("/topics")
def create_topic(
    request: Request,
    ui: UiAdminPost,
    db: DbSession,
    key: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=1000)] = "",
    consent: Annotated[str, Form(max_length=10)] = "opt_in",
    is_service: Annotated[bool, Form()] = False,
) -> Response:
    """Create a topic through the consent service (which audits it)."""
    sent = {
        "key": key,
        "name": name,
        "description": description,
        "opt_in": consent != "opt_out",
        "is_service": is_service,
    }
    if consent not in {"opt_in", "opt_out"}:  # the form offers these two only
        return _topics_page(
            request, ui, db, form=sent, error="Consent: choose opt-in or opt-out.", status_code=400
        )
    try:
        topic = consent_service.create_topic(
            db,
            workspace_id=ui.workspace_id,
            key=key,
            name=name,
            description=description.strip(),
            opt_in=consent != "opt_out",
            is_service=is_service,
            actor=ui.principal.actor,
        )
    except ValidationFailed as exc:
        db.rollback()
        return _topics_page(request, ui, db, form=sent, error=exc.message, status_code=400)
    label = topic.key
    db.commit()
    return redirect(request, "/settings/topics", flash=Flash("success", f"Topic {label} is created."))
