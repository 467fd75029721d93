"""When a campaign's message should go: at a local wall-clock time, after a delay, throttled. Pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def parse_local_time(text: str) -> time:
    """Parse ``HH:MM`` (24 h); raise ValueError otherwise."""
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and len(hours) in (1, 2)):
        raise ValueError(f"expected a time like 09:30, got {text!r}")
    return time(int(hours), int(minutes))


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """Return the zone called ``name``, else ``fallback``'s."""
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def next_local(after: datetime, at: time, tz: ZoneInfo) -> datetime:
    """The first moment at or after ``after`` (aware) when the wall clock in ``tz`` reads ``at``, in UTC.

    A wall time skipped by a DST jump resolves forward (the zone's fold rules), never to the past.
    """
    local = after.astimezone(tz)
    for offset in range(0, 3):
        day = local.date() + timedelta(days=offset)
        candidate = datetime.combine(day, at, tzinfo=tz)
        if candidate.astimezone(UTC) >= after.astimezone(UTC):
            return candidate.astimezone(UTC)
    raise AssertionError("unreachable: a wall time recurs within two days")


def on_local_day(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The moment the wall clock in ``tz`` reads ``at`` on ``day``, in UTC."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def throttled(start: datetime, index: int, per_hour: int | None) -> datetime:
    """When the ``index``-th message (0-based) of a campaign sending ``per_hour`` messages an hour is due."""
    if not per_hour or per_hour <= 0:
        return start
    return start + timedelta(seconds=index * 3600 / per_hour)
