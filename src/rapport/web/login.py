"""Log in and out of the marketer UI.

The login form has no session to hang a CSRF token on, so it uses a signed double submit: the page sets a
random nonce in a short-lived cookie and puts the same nonce, signed with the runtime's secret key, in a
hidden field; the post must bring both back and they must match.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from rapport.accounts import service as accounts_service
from rapport.api.deps import SESSION_COOKIE
from rapport.errors import Forbidden, Unauthenticated
from rapport.kit.tokens import tokens_equal
from rapport.runtime import Runtime
from rapport.web.rendering import Flash, redirect, render
from rapport.web.session import UiForbidden, UiPost, UiRoute, safe_next, session_user

router = APIRouter(route_class=UiRoute, include_in_schema=False)

LOGIN_COOKIE = "rapport_login"
LOGIN_FORM_MAX_AGE = 2 * 3600


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _serializer(runtime: Runtime) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(runtime.secret_key, salt="rapport.ui.login")


def _login_page(request: Request, *, next_path: str, email: str = "", error: str = "") -> Response:
    """Render the login form with a fresh double-submit nonce.

    A failed attempt answers 200 too: the page is fine, only the credentials were not.
    """
    runtime = _runtime(request)
    nonce = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {
            "title": "Log in",
            "login_token": _serializer(runtime).dumps(nonce),
            "next_path": next_path,
            "email": email,
            "error": error,
        },
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_FORM_MAX_AGE,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=runtime.settings.secure_cookies,
    )
    return response


def _check_login_token(request: Request, signed: str) -> None:
    """Refuse a login post whose signed nonce does not match the cookie set with the form."""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    try:
        nonce = _serializer(_runtime(request)).loads(signed, max_age=LOGIN_FORM_MAX_AGE)
    except (BadSignature, SignatureExpired):
        nonce = None
    if not cookie or not isinstance(nonce, str) or not tokens_equal(nonce, cookie):
        raise UiForbidden("The login form expired or was not sent by Rapport. Reload the page and try again.")


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    """Show the login form, or go straight on when already signed in."""
    target = safe_next(next)
    if session_user(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, next_path=target)


@router.post("/login")
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    login_token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Check the email and password, open a session and go to ``next``."""
    _check_login_token(request, login_token)
    runtime = _runtime(request)
    target = safe_next(next)
    with runtime.sessions() as db:
        try:
            user = accounts_service.authenticate_user(db, email=email, password=password)
            membership = accounts_service.default_workspace_for(db, user)
        except Unauthenticated:
            return _login_page(
                request, next_path=target, email=email, error="Wrong email or password. Please try again."
            )
        except Forbidden:
            return _login_page(
                request,
                next_path=target,
                email=email,
                error="This account is not a member of any workspace. Ask an admin to add you.",
            )
        _session, token = accounts_service.start_session(
            db,
            user=user,
            workspace_id=membership.workspace_id,
            now=runtime.clock.now(),
            max_age_seconds=runtime.settings.session_max_age_seconds,
        )
        db.commit()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=runtime.settings.session_max_age_seconds,
        path="/",
        httponly=True,
        samesite="lax",
        secure=runtime.settings.secure_cookies,
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, user: UiPost) -> Response:
    """End the session and go back to the login page."""
    with _runtime(request).sessions() as db:
        accounts_service.end_session(db, user.session_id)
        db.commit()
    response = redirect(request, "/login", flash=Flash("info", "You have logged out."))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
