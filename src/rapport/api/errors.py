"""One error shape for every API answer: ``{"error": {"code", "message", "details"}}``; no stack traces.

A person's browser asking for a UI page gets an HTML page instead: ``create_app`` passes the UI's
:func:`rapport.web.error_pages.error_page` as ``page``, and every handler answers what it returns when that is
not None (it is None for the API, collection, tracking and every other machine endpoint, and for htmx).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from rapport.errors import RapportError, RateLimited

log = logging.getLogger("rapport.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """Build the shared error body."""
    return {"error": {"code": code, "message": message, "details": details}}


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        out.append(
            {
                "field": ".".join(loc[1:] if loc and loc[0] in {"body", "query", "path"} else loc),
                "in": loc[0] if loc else "",
                "reason": err.get("msg", "invalid"),
            }
        )
    return out


#: Answers an error as a page for a person (``request, status, message``), or None for the JSON body.
ErrorPage = Callable[[Request, int, str], Response | None]


def install_error_handlers(app: FastAPI, *, page: ErrorPage | None = None) -> None:
    """Register the handlers that render every error in the shared shape (or as ``page`` says)."""

    async def answer(
        request: Request, body: dict[str, Any], status_code: int, headers: Mapping[str, str] | None = None
    ) -> Response:
        shown = None
        if page is not None:  # in a thread: a page may read the session from the database
            shown = await run_in_threadpool(page, request, status_code, str(body["error"]["message"]))
        if shown is None:
            return JSONResponse(body, status_code=status_code, headers=headers)
        shown.headers.update(headers or {})
        return shown

    @app.exception_handler(RapportError)
    async def rapport_error(request: Request, exc: RapportError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        if exc.status_code >= 500:
            log.error("internal error %s", exc.code, exc_info=exc)
        return await answer(request, exc.to_dict(), exc.status_code, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        details = _field_errors(exc)
        first = details[0] if details else {"field": "", "reason": "invalid request"}
        message = f"{first['field'] or 'request'}: {first['reason']}"
        return await answer(request, error_body("validation_failed", message, details), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "internal_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return await answer(
            request, error_body(code, message), exc.status_code, getattr(exc, "headers", None)
        )

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client hung up mid-body: nothing was accepted and nobody is listening; not a server error.
        log.info("client disconnected before the request body was read")
        return JSONResponse(
            error_body("client_disconnected", "the client closed the connection"), status_code=400
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return await answer(
            request, error_body("internal_error", "something went wrong on our side; it has been logged"), 500
        )
