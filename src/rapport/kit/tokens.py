"""Secret tokens: generation, hashing for storage, constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(prefix: str, nbytes: int = 24) -> str:
    """Return a new random token such as ``sk_live_…``; the prefix tells its kind at a glance."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest stored in place of a high-entropy token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    """Compare two strings in constant time."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
