"""FastAPI dependencies: database sessions (the edge owns the transaction) and authentication.

Secret keys come as ``Authorization: Bearer sk_…``. Write keys (``wk_…``) come as HTTP Basic username the
way Segment's SDKs send them and are accepted only by the ingest routes (R19). The marketer UI's own
session cookie is accepted too, with an ``X-CSRF-Token`` header on unsafe methods.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from rapport.accounts import service as accounts_service
from rapport.accounts.principal import Principal
from rapport.errors import CsrfFailed, Forbidden, NotFound, Unauthenticated
from rapport.kit.bounds import MAX_ID
from rapport.kit.pagination import MAX_OFFSET
from rapport.kit.tokens import tokens_equal
from rapport.runtime import Runtime

SESSION_COOKIE = "rapport_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


#: The ``offset`` query parameter of every list endpoint (rows skipped).
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


_AS_ID = TypeAdapter(int)


def ids_in_range(request: Request) -> None:
    """Answer 404 for a path parameter that reads as a whole number beyond ±``MAX_ID``: no row has that id,
    and binding it failed in the driver (SQLite: ``OverflowError``; PostgreSQL: out of range) as a 500.
    The value is read as the route will read it (pydantic's lax ``int``: a sign, ``_`` separators, ``.0``,
    spaces). Installed once for every route (``create_app``), before the route's own dependencies."""
    for value in request.path_params.values():
        if not isinstance(value, str) or len(value) < 19:  # shorter text cannot exceed 2**63 - 1
            continue
        try:
            number = _AS_ID.validate_python(value)
        except ValidationError:
            continue  # not a number: the route answers it
        if abs(number) > MAX_ID:
            raise NotFound("nothing has this id")


def get_runtime(request: Request) -> Runtime:
    """Return the runtime built by create_app."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_db(request: Request) -> Iterator[Session]:
    """Yield a session for a request that writes; the handler commits, anything uncommitted rolls back."""
    with get_runtime(request).sessions() as db:
        yield db


def get_read_db(request: Request) -> Iterator[Session]:
    """Yield a session for a request that only reads (takes no write lock on SQLite)."""
    with get_runtime(request).read_sessions() as db:
        yield db


DbSession = Annotated[Session, Depends(get_db)]
ReadDbSession = Annotated[Session, Depends(get_read_db)]


def presented_key(request: Request) -> str | None:
    """Return the API key in the Authorization header (Bearer, or Basic username), if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise Unauthenticated("malformed Basic authorization header") from None
        username, _, _password = decoded.partition(":")
        return username or None
    if header:
        raise Unauthenticated("unsupported authorization scheme; use Bearer with a secret key")
    return None


def authenticate(request: Request) -> Principal:
    """Resolve the caller from a key or the UI session cookie, or raise Unauthenticated."""
    runtime = get_runtime(request)
    now = runtime.clock.now()
    key = presented_key(request)
    if key is not None:
        with runtime.read_sessions() as db:
            principal = accounts_service.authenticate_key(db, key)
        if accounts_service.key_use_is_stale(principal.last_used_at, now):
            with runtime.sessions() as db:
                accounts_service.authenticate_key(db, key, now=now)
                db.commit()
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        with runtime.read_sessions() as db:
            session, principal, _user = accounts_service.resolve_session(db, cookie, now=now)
        if request.method not in SAFE_METHODS:
            sent = request.headers.get("x-csrf-token", "")
            if not sent or not tokens_equal(sent, session.csrf_token):
                raise CsrfFailed("missing or wrong X-CSRF-Token header")
        return principal
    raise Unauthenticated("authentication required: send a secret key as 'Authorization: Bearer sk_…'")


def require_scope(scope: str) -> Callable[[Request], Principal]:
    """Return a dependency that admits callers holding ``scope`` (``"any"``: any secret key or UI user).

    Write keys are always refused (R19).
    """

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if principal.kind == "write_key":
            raise Forbidden("write keys can only send events; use a secret key", code="write_key_not_allowed")
        if scope != "any" and not principal.can(scope):
            raise Forbidden(f"this key or role lacks the {scope!r} scope", code="missing_scope")
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


def client_ip(request: Request) -> str | None:
    """Return the client address as seen by the server."""
    return request.client.host if request.client else None
