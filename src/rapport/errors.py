"""Errors with stable codes; the API renders every one as ``{"error": {"code", "message", "details"}}``.

The tree::

    RapportError (500, internal_error)
    ├── BadRequest (400, bad_request)
    │   └── ValidationFailed (400, validation_failed)
    ├── Unauthenticated (401, unauthenticated)
    ├── Forbidden (403, forbidden)
    │   └── CsrfFailed (403, csrf_failed)
    ├── NotFound (404, not_found)
    ├── Conflict (409, conflict)
    ├── Unprocessable (422, unprocessable)
    ├── PayloadTooLarge (413, payload_too_large)
    └── RateLimited (429, rate_limited)
"""

from __future__ import annotations

from typing import Any


class RapportError(Exception):
    """Base of every error Rapport raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """Render the error body shared by every API answer."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(RapportError):
    status_code = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    code = "validation_failed"


class Unauthenticated(RapportError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(RapportError):
    status_code = 403
    code = "forbidden"


class CsrfFailed(Forbidden):
    code = "csrf_failed"


class NotFound(RapportError):
    status_code = 404
    code = "not_found"


class Conflict(RapportError):
    status_code = 409
    code = "conflict"


class Unprocessable(RapportError):
    status_code = 422
    code = "unprocessable"


class PayloadTooLarge(RapportError):
    status_code = 413
    code = "payload_too_large"


class RateLimited(RapportError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 1, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after
