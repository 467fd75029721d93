"""Templates, security headers and flash messages shared by every UI page.

Pages render through :func:`render`, which adds the layout's context (the signed-in user, the navigation,
pending flash messages) and the headers a strict Content-Security-Policy needs. Actions that change
something answer with :func:`redirect` and an optional flash message carried in a signed cookie.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from rapport.kit.clock import as_utc
from rapport.runtime import Runtime

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
FLASH_COOKIE = "rapport_flash"

#: Every UI page forbids inline scripts and styles and anything from another origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the main navigation."""

    label: str
    href: str


NAVIGATION: tuple[NavItem, ...] = (
    NavItem("Dashboard", "/"),
    NavItem("Customers", "/customers"),
    NavItem("Segments", "/segments"),
    NavItem("Templates", "/templates"),
    NavItem("Campaigns", "/campaigns"),
    NavItem("Data", "/data"),
    NavItem("Settings", "/settings"),
)


@dataclass(frozen=True, slots=True)
class Flash:
    """A one-time message shown on the next page: level is ``success``, ``info`` or ``error``."""

    level: str
    text: str


def build_templates() -> Jinja2Templates:
    """Build the Jinja2 environment: autoescaped, strict about undefined names."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = format_when
    return Jinja2Templates(env=env)


def format_when(value: datetime | None) -> str:
    """Format a timestamp for people: ``23 Nov 2026, 01:07 UTC``; ``never`` when absent."""
    if value is None:
        return "never"
    return as_utc(value).strftime("%d %b %Y, %H:%M UTC")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _flash_serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(_runtime(request).secret_key, salt="rapport.ui.flash")


def pending_flashes(request: Request) -> list[Flash]:
    """Return the flash messages carried by the request's cookie (ignored when tampered with)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        items = _flash_serializer(request).loads(raw)
    except BadSignature:
        return []
    return [Flash(str(level), str(text)) for level, text in items][:5]


def active_nav(path: str) -> str:
    """Return the href of the navigation entry that ``path`` belongs to."""
    best = "/"
    for item in NAVIGATION:
        if item.href != "/" and (path == item.href or path.startswith(item.href + "/")):
            best = item.href
    return best


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    flashes: list[Flash] | None = None,
) -> HTMLResponse:
    """Render a page with the layout's context and the UI security headers; consumes pending flashes."""
    templates: Jinja2Templates = request.app.state.ui_templates
    shown = pending_flashes(request) + (flashes or [])
    ctx: dict[str, Any] = {
        "ui": getattr(request.state, "ui_user", None),
        "navigation": NAVIGATION,
        "active_nav": active_nav(request.url.path),
        "flashes": shown,
        "title": "",
    }
    ctx.update(context or {})
    response = templates.TemplateResponse(
        request, name, ctx, status_code=status_code, headers=dict(SECURITY_HEADERS)
    )
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def redirect(request: Request, url: str, *, flash: Flash | None = None) -> RedirectResponse:
    """Answer a form post with 303 See Other to ``url``, carrying an optional flash message."""
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        value = _flash_serializer(request).dumps([[flash.level, flash.text]])
        response.set_cookie(
            FLASH_COOKIE,
            value,
            max_age=120,
            path="/",
            httponly=True,
            samesite="lax",
            secure=_runtime(request).settings.secure_cookies,
        )
    return response


def render_error(request: Request, status_code: int, message: str) -> Response:
    """Render the error page (400, 403, 404, 405, 500, …) in the layout."""
    titles = {
        400: "Bad request",
        403: "Not allowed",
        404: "Not found",
        405: "Method not allowed",
        409: "Conflict",
        413: "Too large",
        429: "Too many requests",
    }
    title = titles.get(status_code, "Something went wrong")
    return render(
        request,
        "error.html",
        {"title": title, "status_code": status_code, "message": message},
        status_code=status_code,
    )
