"""Structured logging: one JSON object per line, the request id on each, personal data masked (R27).

Log lines must never carry personal data. Code avoids putting it there; as a second line of defence every
record passes through ``redact`` which masks anything shaped like an email address or a phone number.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from rapport.kit.requestctx import current_request_id

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w/])\+?\d[\d \-().]{7,}\d(?![\w/])")

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


def _mask_phone(match: re.Match[str]) -> str:
    # Phone numbers have 9-15 digits; dates and times (8 or fewer, or with colons) are left alone.
    digits = sum(ch.isdigit() for ch in match.group(0))
    return "[phone]" if 9 <= digits <= 15 else match.group(0)


def redact(text: str) -> str:
    """Mask email addresses and phone numbers in ``text``."""
    text = _EMAIL.sub("[email]", text)
    return _PHONE.sub(_mask_phone, text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with time, level, logger, message, request id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        request_id = current_request_id()
        if request_id:
            payload["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class PlainFormatter(logging.Formatter):
    """Human-readable lines for a terminal, redacted the same way."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = current_request_id()
        prefix = f"[{request_id}] " if request_id else ""
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {prefix}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def configure_logging(*, level: str = "INFO", json_lines: bool = True, stream: Any = None) -> None:
    """Install the Rapport handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_rapport", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._rapport = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # Alembic announces its dialect on every revision check (health checks); only its warnings matter.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # The access log would print query strings; our own middleware logs requests without them.
    logging.getLogger("uvicorn.access").disabled = True
