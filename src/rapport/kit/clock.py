"""Time behind a small port so tests can move it: ``SystemClock`` for real, ``FakeClock`` for tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Clock(Protocol):
    """Tells the time."""

    def now(self) -> datetime:
        """Return the current aware UTC time."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Return the current aware UTC time."""
        return utcnow()


class FakeClock:
    """A clock that only moves when told to; thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = as_utc(start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Return the fake current time."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when``."""
        with self._lock:
            self._now = as_utc(when)
