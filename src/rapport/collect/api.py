"""The Segment-compatible tracking API: ``POST /v1/{identify,track,page,screen,group,alias,batch,import}``.

Existing Segment and RudderStack SDKs work unchanged: the write key comes as the HTTP Basic username (empty
password), as a Bearer token, or as ``writeKey`` in the body; bodies may be gzip- or deflate-encoded; the
answer is ``200 {"success": true}`` once the event is durable (R2). Secret keys holding ``events:write``
may send too. Limits (R3): 32 KB per event, 500 KB per batch, both inclusive → 400 with the reason;
a full ingest queue → 429 with Retry-After. See docs/tracking-api.md.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from rapport.accounts import service as accounts_service
from rapport.accounts.principal import Principal
from rapport.api.deps import get_runtime, presented_key
from rapport.collect import ingest
from rapport.collect.committer import Committer
from rapport.collect.normalize import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    Envelope,
    FieldError,
    InvalidJson,
    parse_json_fast,
    storable_size,
)
from rapport.errors import BadRequest, Forbidden, RapportError, RateLimited, Unauthenticated, ValidationFailed
from rapport.kit.gcwork import freeze_startup_heap
from rapport.kit.tokens import hash_token
from rapport.runtime import Runtime
from rapport.worker.runner import notify_work

log = logging.getLogger("rapport.collect.api")
router = APIRouter(prefix="/v1", tags=["tracking"])

_SUCCESS = b'{"success":true}'
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}
#: How long a validated key is trusted without asking the database again; revocation takes effect on
#: ingest within this many seconds (every other route checks on each request).
KEY_CACHE_SECONDS = 1.0
_LAST_USED_EVERY = 300.0
_COMPRESSED_SLACK = 1024
#: Messages per batch request: bounds the work (and quarantine rows) one request can cause.
MAX_BATCH_MESSAGES = 5_000
_BODY_SCHEMA = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}}


class EventTooLarge(BadRequest):
    """A single event over 32 KB."""

    code = "event_too_large"


class BatchTooLarge(BadRequest):
    """A batch body over 500 KB."""

    code = "batch_too_large"


class UnsupportedEncoding(RapportError):
    """A Content-Encoding other than gzip, deflate or identity."""

    status_code = 415
    code = "unsupported_encoding"


class StoreUnavailable(RateLimited):
    """The event store could not commit; nothing was acknowledged, the client should retry."""

    status_code = 503
    code = "store_unavailable"


class IngestAuth:
    """Resolves ingest keys with a short cache so the hot path costs no database read per request."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._by_header: dict[str, tuple[Principal, float]] = {}
        self._touched: dict[int, float] = {}
        self._inflight: dict[str, asyncio.Future[Principal]] = {}

    async def principal(self, runtime: Runtime, key: str) -> Principal:
        """Return the sender for ``key``: a write key, or a secret key holding ``events:write``."""
        digest = hash_token(key.strip())
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        # One lookup per key at a time: concurrent requests arriving as the entry expires share it.
        pending = self._inflight.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(anyio.to_thread.run_sync(self._load, runtime, key))
            self._inflight[digest] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(digest, None))
        principal = await asyncio.shield(pending)
        if principal.kind == "secret_key" and not principal.can("events:write"):
            raise Forbidden("this key lacks the 'events:write' scope", code="missing_scope")
        if principal.kind not in {"write_key", "secret_key"}:
            raise Forbidden("send events with a write key or a secret key")
        if len(self._cache) > 10_000:
            self._cache.clear()
        if self.ttl > 0:
            self._cache[digest] = (principal, now + self.ttl)
        return principal

    async def for_request(self, runtime: Runtime, request: Request) -> Principal | None:
        """Return the sender the Authorization header names, or None without one.

        Cached by the header's exact text for the same ``ttl`` as the key itself, which spares the hot
        path the Basic decoding and the key's hash on every request.
        """
        header = request.headers.get("authorization")
        if not header:
            return None
        now = time.monotonic()
        hit = self._by_header.get(header)
        if hit is not None and hit[1] > now:
            return hit[0]
        key = presented_key(request)
        if key is None:
            return None
        principal = await self.principal(runtime, key)
        if self.ttl > 0:
            if len(self._by_header) > 10_000:
                self._by_header.clear()
            self._by_header[header] = (principal, now + self.ttl)
        return principal

    def _load(self, runtime: Runtime, key: str) -> Principal:
        with runtime.read_sessions() as db:
            principal = accounts_service.authenticate_key(db, key)
        now = time.monotonic()
        if now - self._touched.get(principal.id, -_LAST_USED_EVERY) >= _LAST_USED_EVERY:
            self._touched[principal.id] = now
            try:
                with runtime.sessions() as db:
                    accounts_service.authenticate_key(db, key, now=runtime.clock.now())
                    db.commit()
            except Exception as exc:  # last-used is bookkeeping: it must never refuse an event
                log.warning("could not record key use: %s", type(exc).__name__)
        return principal


@dataclass
class IngestState:
    """What the ingest routes share: the group committer and the key cache; started by the app lifespan."""

    runtime: Runtime
    committer: Committer[ingest.IngestWork, list[int]]
    auth: IngestAuth = field(default_factory=IngestAuth)

    async def start(self) -> None:
        """Tune the process for the hot path (once) and start the committer."""
        tune_process()
        await self.committer.start()

    async def stop(self) -> None:
        """Drain and stop the committer."""
        await self.committer.stop()


#: The GIL switch interval while the ingest writer runs (Python's default is 5 ms).
SWITCH_INTERVAL = 0.001
_tuned = False


def tune_process() -> None:
    """Make the serving process fit the ingest hot path; runs once per process, at the first start.

    Two process-wide settings, both measured (docs/tracking-api.md, B1): (1) everything allocated until now
    (modules, the app, routes: some 280k objects) moves to the GC's permanent generation, so the full
    collections that requests trigger stop scanning it (each one paused the event loop ~150 ms CPU);
    (2) the GIL switch interval drops to 1 ms: the committer's thread retakes the GIL after every database
    call, and behind a busy event loop each retake waited up to the default 5 ms (a convoy that stretched
    every group commit and so every acknowledgement).
    """
    global _tuned
    if _tuned:
        return
    _tuned = True
    freeze_startup_heap()
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))


def build_ingest(
    runtime: Runtime,
    *,
    max_pending: int = 20_000,
    max_group: int = 2_000,
    key_cache_seconds: float = KEY_CACHE_SECONDS,
    full_sync: bool | None = None,
) -> IngestState:
    """Build the ingest state for ``create_app``: a committer writing through ``runtime``'s engine.

    ``full_sync`` (SQLite only): fsync every group commit so an acknowledged event survives a power cut;
    False trades that for latency (it still survives a crash of the process). PostgreSQL follows its own
    ``synchronous_commit``. Unset, it follows ``settings.ingest_full_sync`` when Settings has that field,
    else True.
    """
    engine = runtime.engine
    if full_sync is None:
        full_sync = bool(getattr(runtime.settings, "ingest_full_sync", True))
    writer = ingest.IngestWriter(engine, full_sync=full_sync)
    committer: Committer[ingest.IngestWork, list[int]] = Committer(
        write=writer.write,
        size=lambda work: work.size,
        isolate=ingest.is_data_error,
        max_pending=max_pending,
        max_group=max_group,
        name="rapport-ingest",
        on_idle=writer.release,
        # the in-process worker's processor starts on the new events now, not at its next poll (SQLite;
        # PostgreSQL also wakes workers in other processes with NOTIFY, see ingest.PENDING_CHANNEL)
        on_written=lambda: notify_work(runtime, ingest.PENDING_CHANNEL),
    )
    return IngestState(runtime=runtime, committer=committer, auth=IngestAuth(key_cache_seconds))


def _state(request: Request) -> IngestState:
    state: IngestState | None = getattr(request.app.state, "ingest", None)
    if state is None:
        state = build_ingest(get_runtime(request))
        request.app.state.ingest = state
    return state


def _inflate(data: bytes, wbits: int, limit: int, too_large: type[BadRequest]) -> bytes:
    """Decompress ``data`` but never past ``limit`` bytes (a gzip bomb stops at the limit)."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error:
            raise BadRequest("the body is not valid gzip/deflate data", code="invalid_encoding") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise too_large(f"the decompressed body is larger than {limit:,} bytes", details={"limit": limit})
        if not inflater.eof:
            raise BadRequest("the compressed body is truncated", code="invalid_encoding")
        data = inflater.unused_data
    return bytes(out)


async def read_body(request: Request, limit: int, too_large: type[BadRequest]) -> bytes:
    """Read the body up to ``limit`` bytes (after decompression), refusing more without buffering it."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in {"", "identity"}:
        wbits = 0
    elif encoding in {"gzip", "x-gzip"}:
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = 32 + zlib.MAX_WBITS
    else:
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    raw_limit = limit if wbits == 0 else limit + _COMPRESSED_SLACK
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > raw_limit:
        raise too_large(
            f"the body is {int(declared):,} bytes; the limit is {limit:,} bytes",
            details={"limit": limit, "size": int(declared)},
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > raw_limit:
            raise too_large(f"the body is larger than {limit:,} bytes", details={"limit": limit})
        chunks.append(chunk)
    data = b"".join(chunks)
    return data if wbits == 0 else _inflate(data, wbits, limit, too_large)


def _parse(body: bytes) -> tuple[Any, bool]:
    """Parse the body; also tell whether its messages are known storable (see ``parse_json_fast``)."""
    if not body.strip():
        raise ValidationFailed(
            "the body is empty; send a JSON object", details={"errors": [{"field": "", "reason": "empty"}]}
        )
    try:
        doc, fast = parse_json_fast(body)
        return doc, fast and b"\\u0000" not in body
    except InvalidJson as exc:
        raise BadRequest(f"malformed JSON: {exc}", code="invalid_json") from None


def _object_body(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ValidationFailed(
            "the body must be a JSON object",
            details={"errors": [FieldError("", "must be a JSON object").as_dict()]},
        )
    return doc


async def _sender(
    request: Request, state: IngestState, header_key: str | None, doc: dict[str, Any]
) -> Principal:
    key = header_key
    if key is None:
        body_key = doc.get("writeKey")
        if body_key is not None and not isinstance(body_key, str):
            raise Unauthenticated("writeKey must be a string")
        key = body_key.strip() if body_key else None
    if not key:
        raise Unauthenticated("send the write key as the HTTP Basic username or as writeKey in the body")
    return await state.auth.principal(state.runtime, key)


async def _commit(state: IngestState, work: ingest.IngestWork) -> list[int]:
    try:
        return await state.committer.submit(work)
    except RapportError:
        raise
    except Exception as exc:
        if ingest.is_data_error(exc):
            raise ingest.StorageRejected(
                "the event store refused this event; it was not stored", details={"error": type(exc).__name__}
            ) from None
        raise StoreUnavailable(
            "the event store is unavailable; nothing was stored, retry", retry_after=2
        ) from None


def _ok(body: bytes = _SUCCESS) -> Response:
    return Response(body, media_type="application/json", headers={"Access-Control-Allow-Origin": "*"})


#: The plain success answer, shared: a Response is not changed by sending it.
_OK = _ok()


async def _single(request: Request, route_type: str) -> Response:
    state = _state(request)
    principal = await state.auth.for_request(state.runtime, request)
    body = await read_body(request, MAX_EVENT_BYTES, EventTooLarge)
    parsed, fast = _parse(body)
    message = _object_body(parsed)
    if principal is None:
        principal = await _sender(request, state, None, message)
    prepared = ingest.prepare(
        [message],
        principal=principal,
        received_at=state.runtime.clock.now(),
        route_type=route_type,
        raw_size=len(body),
        prechecked=b"\\u" not in body,
        fast_json=fast,
    )
    ids = await _commit(state, prepared.work)
    if prepared.rejections:
        rejected = prepared.rejections[0]
        error = EventTooLarge if rejected.code == "event_too_large" else ValidationFailed
        raise error(
            rejected.reason,
            details={
                "errors": [e.as_dict() for e in rejected.errors],
                "messageId": rejected.message_id,
                "quarantined": ids[0] if ids else None,
            },
        )
    return _OK


async def _batch(request: Request) -> Response:
    state = _state(request)
    principal = await state.auth.for_request(state.runtime, request)
    body = await read_body(request, MAX_BATCH_BYTES, BatchTooLarge)
    parsed, fast = _parse(body)
    doc = _object_body(parsed)
    if principal is None:
        principal = await _sender(request, state, None, doc)
    batch = doc.get("batch")
    if not isinstance(batch, list):
        raise ValidationFailed(
            "batch: must be an array of messages",
            details={"errors": [{"field": "batch", "reason": "must be an array"}]},
        )
    if len(batch) > MAX_BATCH_MESSAGES:
        raise BatchTooLarge(
            f"the batch has {len(batch):,} messages; the limit is {MAX_BATCH_MESSAGES:,}",
            details={"limit": MAX_BATCH_MESSAGES, "size": len(batch)},
        )
    context = doc.get("context")
    if context is not None and not isinstance(context, dict):
        raise ValidationFailed(
            "context: must be an object",
            details={"errors": [{"field": "context", "reason": "must be an object"}]},
        )
    _size, problem = storable_size(context)
    if problem:
        raise ValidationFailed(
            f"context: {problem}", details={"errors": [{"field": "context", "reason": problem}]}
        )
    envelope = Envelope(sent_at=doc.get("sentAt"), context=context)
    if not batch:
        return _OK
    # A batch no bigger than one event, without \u escapes, cannot hold an oversized or unstorable item.
    prechecked = len(body) <= MAX_EVENT_BYTES and b"\\u" not in body
    prepared = ingest.prepare(
        batch,
        principal=principal,
        received_at=state.runtime.clock.now(),
        envelope=envelope,
        prechecked=prechecked,
        fast_json=fast,
    )
    ids = await _commit(state, prepared.work)
    if not prepared.notes:
        return _OK
    answer = {
        "success": True,
        "accepted": prepared.accepted,
        "quarantined": [note.as_dict(qid) for note, qid in zip(prepared.notes, ids, strict=True)],
    }
    return JSONResponse(answer, headers={"Access-Control-Allow-Origin": "*"})


@router.post("/identify", openapi_extra=_BODY_SCHEMA)
async def identify(request: Request) -> Response:
    """Tie a user to their traits (Segment identify)."""
    return await _single(request, "identify")


@router.post("/track", openapi_extra=_BODY_SCHEMA)
async def track(request: Request) -> Response:
    """Record an action a user performed (Segment track)."""
    return await _single(request, "track")


@router.post("/page", openapi_extra=_BODY_SCHEMA)
async def page(request: Request) -> Response:
    """Record a page view (Segment page)."""
    return await _single(request, "page")


@router.post("/screen", openapi_extra=_BODY_SCHEMA)
async def screen(request: Request) -> Response:
    """Record a mobile screen view (Segment screen)."""
    return await _single(request, "screen")


@router.post("/group", openapi_extra=_BODY_SCHEMA)
async def group(request: Request) -> Response:
    """Associate a user with a group (Segment group)."""
    return await _single(request, "group")


@router.post("/alias", openapi_extra=_BODY_SCHEMA)
async def alias(request: Request) -> Response:
    """Link a previous id to a user id (Segment alias)."""
    return await _single(request, "alias")


@router.post("/batch", openapi_extra=_BODY_SCHEMA)
async def batch(request: Request) -> Response:
    """Send up to 500 KB of messages of any type; bad ones are quarantined, good ones stored (R4)."""
    return await _batch(request)


@router.post("/import", openapi_extra=_BODY_SCHEMA)
async def import_batch(request: Request) -> Response:
    """Same as /v1/batch (Segment's historical import endpoint)."""
    return await _batch(request)


@router.options("/{path:path}", include_in_schema=False)
async def preflight(path: str) -> Response:
    """Answer browser CORS preflights: write keys are public, any origin may send events."""
    return Response(status_code=204, headers=_CORS)


#: The calls by name, and by the first letter of the name: analytics.js (``@segment/analytics-next``) posts
#: each call to ``{apiHost}/{type[0]}`` (``/v1/t``, ``/v1/p``, …) and its batching mode to ``/v1/b``.
_KINDS = ("identify", "track", "page", "screen", "group", "alias")
_SINGLE_PATHS = {f"/v1/{name}": kind for kind in _KINDS for name in (kind, kind[0])}
_BATCH_PATHS = frozenset({"/v1/batch", "/v1/import", "/v1/b"})


def _short(kind: str) -> Any:
    async def short_route(request: Request) -> Response:
        return await _single(request, kind)

    return short_route


for _kind in _KINDS:
    router.add_api_route(
        f"/{_kind[0]}",
        _short(_kind),
        methods=["POST"],
        openapi_extra=_BODY_SCHEMA,
        summary=f"Same as /v1/{_kind} (analytics.js's short path)",
    )
router.add_api_route(
    "/b",
    batch,
    methods=["POST"],
    openapi_extra=_BODY_SCHEMA,
    summary="Same as /v1/batch (analytics.js batching)",
)


class IngestFastPath:
    """ASGI middleware that answers ``POST /v1/<type|batch|import>`` without FastAPI's routing layers.

    The tracking calls are the hot path: they run the same handlers as the routes above (which stay for
    the OpenAPI schema and as the fallback), skipping route matching, the dependency solver and two
    middlewares per request. Errors are rendered by the application's own exception handlers, so the
    answer is byte-for-byte what the routes give; anything unexpected propagates to the server error
    handler as before. Install it inside ``RequestIdMiddleware`` so request ids and access logs still apply.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Answer a tracking call, or pass the request on."""
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            kind = _SINGLE_PATHS.get(path)
            if kind is not None or path in _BATCH_PATHS:
                await self._answer(scope, receive, send, kind)
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: dict[str, Any], receive: Any, send: Any, kind: str | None) -> None:
        request = Request(scope, receive)
        try:
            response = await (_single(request, kind) if kind is not None else _batch(request))
        except (RapportError, ClientDisconnect) as exc:
            response = await _render_error(request, exc)
        await response(scope, receive, send)


async def _render_error(request: Request, exc: Exception) -> Response:
    """Render ``exc`` with the handler the application registered for its class (one error shape), plus
    what the vendors' SDKs read from a refusal: ``success: false`` and a top-level ``code`` and ``message``.

    Segment's and RudderStack's Python SDKs raise their ``APIError`` from ``payload["code"]`` and
    ``payload["message"]``; RudderStack's lets the ``KeyError`` of a body without them escape, takes it for
    a network failure and retries a refused request (tests/collect/test_sdk_compat.py)."""
    handlers = getattr(request.app, "exception_handlers", {})
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            response: Response = await handler(request, exc)
            return _sdk_readable(response)
    raise exc


def _sdk_readable(response: Response) -> Response:
    if not isinstance(response, JSONResponse):
        return response
    body = orjson.loads(response.body)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return response
    headers = {
        k: v for k, v in response.headers.items() if k.lower() not in {"content-length", "content-type"}
    }
    readable = {"success": False, "code": error.get("code"), "message": error.get("message"), **body}
    return JSONResponse(readable, status_code=response.status_code, headers=headers)
