"""ASGI middleware: a request id on every request and one access log line without query strings."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from typing import Any

from rapport.kit.requestctx import reset_request_id, set_request_id

log = logging.getLogger("rapport.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class RequestIdMiddleware:
    """Takes a sane X-Request-ID or makes one, exposes it to logs, and echoes it on the answer."""

    def __init__(self, app: Any, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log
        # Made ids are a random per-process prefix and a counter: unique, and no random read per request
        # (they name a request in logs and audit entries; nothing relies on them being unguessable).
        self._prefix = secrets.token_hex(4)
        self._count = itertools.count(1)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        if incoming and _VALID_ID.match(incoming):
            request_id = incoming
        else:
            request_id = f"{self._prefix}{next(self._count) & 0xFFFFFFFF:08x}"
        token = set_request_id(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log and log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %s",
                    scope.get("method"),
                    scope.get("path"),
                    status_holder["status"],
                    extra={"ms": round((time.perf_counter() - started) * 1000, 2)},
                )
            reset_request_id(token)
