"""Send-rate limits per channel (a provider's account limit) and per workspace × channel: token buckets.

The Deliverer asks ``RateLimits.wait`` for every claimed row; ``0`` means a token was taken and the message
may go now; a positive number is how many seconds to put the row back in the queue for (no try is spent).
Rows turned away in one round get successive slots (``1/rate`` apart) instead of all coming back at once.

Limits are read from ``Settings.channel_rates`` (``{"sms": 10}``: 10 messages per second) and from the
workspace settings ``rate_limits`` (same shape); both apply. Buckets live in each Deliverer, so with N
worker processes the total rate is N times the configured one: configure ``rate / N`` (documented in
docs/delivery.md). The burst is one second's worth of tokens (at least one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; times are seconds (any monotonic origin)."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float | None = None
    next_slot: float = 0.0

    def wait(self, now: float) -> float:
        """Take a token and return 0, or return the seconds until this caller's turn (nothing taken)."""
        if self.updated is None:
            self.tokens = self.burst
        else:
            self.tokens = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        slot = max(now + (1.0 - self.tokens) / self.rate, self.next_slot)
        self.next_slot = slot + 1.0 / self.rate
        return slot - now


def _rates(raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        return {}
    rates: dict[str, float] = {}
    for channel, rate in raw.items():
        if isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0:
            rates[str(channel)] = float(rate)
    return rates


class RateLimits:
    """The buckets of one Deliverer: one per channel (settings) and one per workspace × channel."""

    def __init__(self, channel_rates: Mapping[str, float] | None = None) -> None:
        self.channel_rates = _rates(channel_rates or {})
        self._buckets: dict[tuple[int | None, str], TokenBucket] = {}

    def _bucket(self, key: tuple[int | None, str], rate: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[key] = TokenBucket(rate=rate, burst=max(1.0, rate))
        return bucket

    def wait(
        self, channel: str, workspace_id: int, workspace_settings: Mapping[str, Any] | None, now: datetime
    ) -> float:
        """Return 0 when a message on ``channel`` may go at ``now``, else the seconds to defer it by."""
        moment = now.timestamp()
        limits: list[tuple[tuple[int | None, str], float]] = []
        if channel in self.channel_rates:
            limits.append(((None, channel), self.channel_rates[channel]))
        own = _rates((workspace_settings or {}).get("rate_limits"))
        if channel in own:
            limits.append(((workspace_id, channel), own[channel]))
        longest = 0.0
        for key, rate in limits:
            bucket = self._bucket(key, rate)
            longest = max(longest, bucket.wait(moment))
            if longest > 0:
                break  # the token of an earlier bucket is spent; close enough for pacing
        return longest
