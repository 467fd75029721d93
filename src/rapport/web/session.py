"""Who is looking at a UI page, and the guards every UI route uses.

* :data:`UiPage` — a signed-in member (any role); without a session the browser is sent to
  ``/login?next=…``.
* :data:`UiPost` — the same, for a form post: the session's CSRF token must come back in the
  ``csrf_token`` form field or the ``X-CSRF-Token`` header (htmx sends it from the page's meta tag).
* :data:`UiEditorPost` / :data:`UiAdminPost` — a form post by a marketer or admin / an admin only;
  viewers get a 403 page.

Routers of UI pages use ``route_class=UiRoute`` so that errors render as HTML pages, not JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from rapport.accounts import service as accounts_service
from rapport.accounts.principal import Principal
from rapport.accounts.roles import Role
from rapport.api.deps import SESSION_COOKIE
from rapport.errors import RapportError, Unauthenticated
from rapport.kit.tokens import tokens_equal
from rapport.runtime import Runtime
from rapport.web.rendering import render_error

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class UiUser:
    """The signed-in member behind a UI request, with what the layout needs to show."""

    principal: Principal
    session_id: int
    csrf_token: str
    user_id: int
    email: str
    name: str
    role: Role
    workspace_id: int
    workspace_name: str

    @property
    def can_edit(self) -> bool:
        """Tell whether this member may change marketing objects (marketers and admins)."""
        return self.role.at_least(Role.MARKETER)

    @property
    def is_admin(self) -> bool:
        """Tell whether this member may change keys, users and settings."""
        return self.role is Role.ADMIN

    @property
    def display_name(self) -> str:
        """Return the member's name, or their email when they gave none."""
        return self.name or self.email


class LoginRequired(Exception):
    """No live session: the browser goes to the login page and comes back to ``next_path``."""

    def __init__(self, next_path: str | None) -> None:
        super().__init__("login required")
        self.next_path = next_path


class UiForbidden(Exception):
    """A UI request that is refused: a wrong CSRF token or a role that may not do this."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def safe_next(value: str | None) -> str:
    """Return ``value`` when it is a path on this site, else ``/`` (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def login_url(next_path: str | None) -> str:
    """Return the login page URL that comes back to ``next_path`` afterwards."""
    target = safe_next(next_path)
    return "/login" if target == "/" else f"/login?next={quote(target, safe='/')}"


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def session_user(request: Request) -> UiUser | None:
    """Return the member behind the request's session cookie, or None when there is no live session."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    runtime = _runtime(request)
    with runtime.read_sessions() as db:
        try:
            session, principal, user = accounts_service.resolve_session(db, token, now=runtime.clock.now())
        except Unauthenticated:
            return None
        workspace = accounts_service.get_workspace(db, session.workspace_id)
        return UiUser(
            principal=principal,
            session_id=session.id,
            csrf_token=session.csrf_token,
            user_id=user.id,
            email=user.email,
            name=user.name,
            role=Role(principal.role or Role.VIEWER.value),
            workspace_id=session.workspace_id,
            workspace_name=workspace.name,
        )


def ui_user(request: Request) -> UiUser:
    """Require a signed-in member; others are sent to the login page."""
    user = session_user(request)
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path if request.method == "GET" else None)
    request.state.ui_user = user
    return user


async def ui_form_user(request: Request, user: Annotated[UiUser, Depends(ui_user)]) -> UiUser:
    """Require a signed-in member and the session's CSRF token in the form or the X-CSRF-Token header."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    if not sent or not tokens_equal(sent, user.csrf_token):
        raise UiForbidden(
            "This form is out of date or was not sent by Rapport. Reload the page and try again."
        )
    return user


def _require_role(role: Role, what: str) -> Callable[[UiUser], UiUser]:
    def dependency(user: Annotated[UiUser, Depends(ui_form_user)]) -> UiUser:
        if not user.role.at_least(role):
            raise UiForbidden(f"Your role ({user.role.value}) cannot {what}.")
        return user

    dependency.__name__ = f"require_{role.value}_post"
    return dependency


UiPage = Annotated[UiUser, Depends(ui_user)]
UiPost = Annotated[UiUser, Depends(ui_form_user)]
UiEditorPost = Annotated[UiUser, Depends(_require_role(Role.MARKETER, "change anything here"))]
UiAdminPost = Annotated[UiUser, Depends(_require_role(Role.ADMIN, "change keys, users or settings"))]


class UiRoute(APIRoute):
    """A route of a UI page: refusals and errors answer as HTML pages, a missing session as a redirect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler so UI-specific exceptions turn into pages."""
        handler = super().get_route_handler()

        async def ui_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                return RedirectResponse(login_url(exc.next_path), status_code=303)
            except UiForbidden as exc:
                return render_error(request, 403, exc.message)
            except RequestValidationError:
                return render_error(request, 400, "Some of the form's fields are missing or malformed.")
            except RapportError as exc:
                if exc.status_code >= 500:
                    raise
                return render_error(request, exc.status_code, exc.message)

        return ui_handler
