"""When a campaign's message should go: at a local wall-clock time, after a delay, throttled. Pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rapport.kit.clock import as_utc

#: How far in the past a send time may be and still mean "now": the browser's and the server's clocks differ
#: a little, and a form takes a moment to fill in and submit. Older than that, it is a mistake (a wrong year,
#: a draft saved yesterday for "in an hour") and sending at once would surprise everyone.
SEND_AT_GRACE = timedelta(minutes=1)


def parse_local_time(text: str) -> time:
    """Parse ``HH:MM`` (24 h); raise ValueError otherwise."""
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and len(hours) in (1, 2)):
        raise ValueError(f"expected a time like 09:30, got {text!r}")
    return time(int(hours), int(minutes))


def send_at_passed(send_at: datetime, *, now: datetime) -> bool:
    """Whether ``send_at`` lies further in the past than ``SEND_AT_GRACE`` allows."""
    return as_utc(send_at) < as_utc(now) - SEND_AT_GRACE


def past_send_at_message(send_at: datetime, tz: ZoneInfo) -> str:
    """Why a past send time is refused, with the time on the wall clock of ``tz`` (the workspace's)."""
    local = as_utc(send_at).astimezone(tz)
    return f"the send time {local:%Y-%m-%d %H:%M} ({tz.key}) is in the past; choose a later time or send now"


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
