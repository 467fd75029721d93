"""The HTML error page for people browsing the UI, where API clients get the JSON error body.

The app's error handlers (:func:`rapport.api.errors.install_error_handlers`) ask :func:`error_page` first for
every error they answer: an unknown address (404), a wrong method (405), an unexpected exception (500), a
5xx ``RapportError``. It answers the layout's error page (``error.html``: the status, a heading, a sentence
and a link back to the dashboard; never a traceback) when the request is a person's browser asking for a UI
page, and ``None`` otherwise, so the handler answers ``{"error": {...}}`` exactly as before. A UI request is:

* not for a machine endpoint (:data:`MACHINE_PATHS`: the JSON API, collection, tracking, the customers'
  unsubscribe and confirmation links, provider webhooks, the chart data, static files, health, API docs);
* not an htmx request (``HX-Request``): htmx swaps no error answer, so its partial requests keep the
  answers they always had;
* one whose ``Accept`` header prefers ``text/html`` to JSON, as a browser's page load does (``curl``,
  ``httpx`` and ``fetch`` send ``*/*`` and keep getting JSON).

Errors inside UI routes that a page can explain (a 4xx ``RapportError``, a refused form) are already pages:
:class:`rapport.web.session.UiRoute` renders them with the message of the error.
"""

from __future__ import annotations

import html
import logging

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from rapport.web.rendering import SECURITY_HEADERS, render_error
from rapport.web.session import session_user

log = logging.getLogger("rapport.web")

#: Paths (and everything under them) that answer programs, never a person's page.
MACHINE_PATHS = (
    "/api",
    "/v1",
    "/t",
    "/u",
    "/c",
    "/webhooks",
    "/ui/api",
    "/static",
    "/healthz",
    "/openapi.json",
    "/docs",
    "/redoc",
)
#: What the page says for statuses whose technical message means nothing to a person.
MESSAGES = {
    404: "There is no page at this address. Check it for typos, or start again from the dashboard.",
    405: "This address does not take that kind of request. Start again from the dashboard.",
}
SERVER_ERROR = "Something went wrong on our side. It has been logged; please try again in a moment."
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_JSON_TYPES = frozenset({"application/json", "application/problem+json"})


def is_page_request(request: Request) -> bool:
    """Tell whether a person's browser asked for a UI page (see the module docstring)."""
    path = request.url.path
    if any(path == prefix or path.startswith(prefix + "/") for prefix in MACHINE_PATHS):
        return False
    if request.headers.get("hx-request"):
        return False
    return prefers_html(request.headers.get("accept", ""))


def prefers_html(accept: str) -> bool:
    """Tell whether an ``Accept`` header ranks HTML above JSON (``*/*`` alone prefers neither)."""
    ranks = {"html": 0.0, "json": 0.0}
    for item in accept.split(","):
        media, *params = (part.strip().lower() for part in item.split(";"))
        kind = "html" if media in _HTML_TYPES else "json" if media in _JSON_TYPES else ""
        if not kind:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranks[kind] = max(ranks[kind], quality)
    return ranks["html"] > ranks["json"]


def error_page(request: Request, status_code: int, message: str) -> Response | None:
    """Return the HTML error page for a UI page request, or None for every other request (JSON)."""
    if not is_page_request(request):
        return None
    if status_code >= 500:
        message = SERVER_ERROR  # the exception's own text is for the log, not the page
    else:
        message = MESSAGES.get(status_code, message)
        if getattr(request.state, "ui_user", None) is None:
            _find_user(request)
    try:
        return render_error(request, status_code, message)
    except Exception:  # the page must answer even when rendering is what broke
        log.exception("cannot render the error page")
        return _bare_page(status_code, message)


def _find_user(request: Request) -> None:
    """Show the layout (navigation, user menu) to a signed-in member on an address no route matched."""
    try:
        user = session_user(request)
    except Exception:  # a database that fails here must not turn a 404 into a 500
        log.warning("cannot look up the session for an error page", exc_info=True)
        return
    if user is not None:
        request.state.ui_user = user


def _bare_page(status_code: int, message: str) -> Response:
    body = (
        '<!doctype html><html lang="en-GB"><head><meta charset="utf-8"><title>Rapport</title></head><body>'
        f"<main><p>{status_code}</p><h1>Something went wrong</h1><p>{html.escape(message)}</p>"
        '<p><a href="/">Back to the dashboard</a></p></main></body></html>'
    )
    return HTMLResponse(body, status_code=status_code, headers=dict(SECURITY_HEADERS))
