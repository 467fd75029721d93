"""Frequency caps (R9): the period keys a send counts against, in the recipient's local calendar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

ALL_CHANNELS = "*"


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``limit`` capped messages on ``channel`` (``*``: all channels together) per ``per``."""

    channel: str
    per: str  # "day" | "week"
    limit: int


def caps_from_settings(settings: dict[str, object] | None) -> list[Cap]:
    """Read ``settings["caps"]`` such as ``{"email": {"day": 1, "week": 3}, "*": {"day": 2}}``."""
    raw = (settings or {}).get("caps")
    caps: list[Cap] = []
    if not isinstance(raw, dict):
        return caps
    for channel, limits in raw.items():
        if not isinstance(limits, dict):
            raise ValueError(f"caps for {channel} must be like {{'day': 1, 'week': 3}}")
        for per, limit in limits.items():
            if per not in {"day", "week"} or not isinstance(limit, int) or limit < 0:
                raise ValueError(f"cap {channel}.{per} must be a whole number per day or week")
            caps.append(Cap(channel=str(channel), per=per, limit=limit))
    return caps


def period_key(per: str, moment: datetime, zone: ZoneInfo) -> str:
    """Return the local day (``d2026-11-23``) or ISO week (``w2026-48``) that ``moment`` falls in."""
    local = moment.astimezone(zone)
    if per == "day":
        return f"d{local.date().isoformat()}"
    year, week, _ = local.isocalendar()
    return f"w{year}-{week:02d}"


def applicable(caps: list[Cap], channel: str) -> list[Cap]:
    """Return the caps a message on ``channel`` counts against."""
    return [c for c in caps if c.channel in {channel, ALL_CHANNELS}]
