"""Absolute URLs of the customer-facing consent pages."""

from __future__ import annotations

from rapport.consent import tokens
from rapport.consent.tokens import LinkTarget
from rapport.runtime import Runtime


def unsubscribe_url(runtime: Runtime, target: LinkTarget) -> str:
    """Return the one-click unsubscribe / preference-centre URL for a message (RFC 8058 target)."""
    return f"{runtime.settings.base_url.rstrip('/')}/u/{tokens.unsubscribe_token(runtime.secret_key, target)}"


def confirm_url(runtime: Runtime, target: LinkTarget) -> str:
    """Return the double opt-in confirmation URL."""
    return f"{runtime.settings.base_url.rstrip('/')}/c/{tokens.confirm_token(runtime.secret_key, target)}"
