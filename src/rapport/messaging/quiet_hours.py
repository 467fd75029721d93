"""Quiet hours in the recipient's local time (R14): pure functions over zoneinfo, DST-safe.

A message due inside quiet hours is deferred to the next allowed instant, never dropped. When the
recipient's timezone is uncertain (several candidate zones), a moment is allowed only if it is allowed in
every candidate zone — the strictest reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: SMS may go 08:00-21:00 local unless the workspace says otherwise (TCPA-style default).
DEFAULT_WINDOWS: dict[str, tuple[str, str] | None] = {
    "sms": ("08:00", "21:00"),
    "push": None,
    "email": None,
    "inapp": None,
    "webhook": None,
}


@dataclass(frozen=True, slots=True)
class Window:
    """The local time of day when sending is allowed: ``start`` ≤ t < ``end`` (may wrap past midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, start: str, end: str) -> Window:
        """Build a window from "HH:MM" strings."""
        return cls(time.fromisoformat(start), time.fromisoformat(end))

    def allows(self, local: time) -> bool:
        """Tell whether a local time of day is inside the window."""
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def window_for(channel: str, settings: dict[str, object] | None) -> Window | None:
    """Return the channel's allowed window from workspace settings (``quiet_hours``), or None (any time)."""
    configured = (settings or {}).get("quiet_hours")
    value: object = DEFAULT_WINDOWS.get(channel)
    if isinstance(configured, dict) and channel in configured:
        value = configured[channel]
    if not value:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return Window.parse(str(value[0]), str(value[1]))
    raise ValueError(f"quiet_hours for {channel} must be [start, end] like ['08:00', '21:00']")


def zones(names: Sequence[str]) -> list[ZoneInfo]:
    """Return the valid zones among ``names`` (unknown names are skipped)."""
    out = []
    for name in names:
        try:
            out.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return out


def allowed_at(moment: datetime, window: Window, candidate_zones: Sequence[ZoneInfo]) -> bool:
    """Tell whether ``moment`` is inside the window in every candidate zone."""
    return all(window.allows(moment.astimezone(zone).time()) for zone in candidate_zones)


def next_allowed(moment: datetime, window: Window | None, candidate_zones: Sequence[ZoneInfo]) -> datetime:
    """Return ``moment`` when sending is allowed then, else the earliest later instant that is allowed.

    Candidates are the window openings in each zone over the next three days (computed on local wall
    clocks, so DST changes are handled by zoneinfo); the earliest one allowed in every zone wins. If the
    zones' windows never overlap, the latest opening among the zones on the first day is used, so the
    message still goes, at the least bad moment, rather than never.
    """
    moment = moment.astimezone(UTC)
    if window is None or not candidate_zones or allowed_at(moment, window, candidate_zones):
        return moment
    openings: list[datetime] = []
    for zone in candidate_zones:
        local_day = moment.astimezone(zone).date()
        for offset in range(0, 4):
            day = local_day + timedelta(days=offset)
            opening = datetime.combine(day, window.start, tzinfo=zone)
            # A window start inside a DST gap does not exist; zoneinfo shifts it forward consistently.
            opening_utc = opening.astimezone(UTC)
            if opening_utc > moment:
                openings.append(opening_utc)
    for candidate in sorted(openings):
        if allowed_at(candidate, window, candidate_zones):
            return candidate
    firsts = [
        min(o for o in openings if o.astimezone(z).date() >= moment.astimezone(z).date())
        for z in candidate_zones
    ]
    return max(firsts)
