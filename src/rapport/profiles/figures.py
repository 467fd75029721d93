"""Workspace-wide customer figures for the dashboard: counts, reach and consent per channel.

Each figure is one grouped query over indexed columns or a single scan of the profiles table; nothing
loads profiles into Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from rapport.profiles import repository

#: Channels the dashboard reports reach and consent for, in display order.
CHANNELS = ("email", "sms", "push")
CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "push": "Push"}
STATES = ("subscribed", "pending", "unsubscribed", "never_asked")
ACTIVE_DAYS = 30
NEW_DAYS = 7


@dataclass(frozen=True, slots=True)
class ChannelConsent:
    """Consent on one channel among the customers who have an address there."""

    channel: str
    label: str
    addressable: int
    reachable: int
    states: dict[str, int] = field(default_factory=dict)

    @property
    def opt_in_rate(self) -> float:
        """Return the share of addressable customers who said yes (0 when nobody is addressable)."""
        return self.states.get("subscribed", 0) / self.addressable if self.addressable else 0.0


@dataclass(frozen=True, slots=True)
class CustomerFigures:
    """The dashboard's customer counts."""

    total: int
    known: int
    with_email: int
    with_phone: int
    active: int
    new: int
    channels: list[ChannelConsent]

    @property
    def anonymous(self) -> int:
        """Return the customers known by no email, phone or user id."""
        return self.total - self.known


def customer_figures(
    db: Session, *, workspace_id: int, now: datetime, email_requires_opt_in: bool = True
) -> CustomerFigures:
    """Count customers, known, active in 30 days, new in 7 days, and reach and consent per channel.

    Reachable means: an address on the channel and a channel-wide "subscribed" that is not paused; for
    email, when the workspace does not require an opt-in, also never asked.
    """
    counts = repository.customer_figures(
        db,
        workspace_id=workspace_id,
        active_since=now - timedelta(days=ACTIVE_DAYS),
        new_since=now - timedelta(days=NEW_DAYS),
    )
    states = repository.channel_states(db, workspace_id=workspace_id)
    reachable = repository.reachable_counts(db, workspace_id=workspace_id, now=now)
    if not email_requires_opt_in:
        reachable["email"] = repository.email_never_blocked(db, workspace_id=workspace_id, now=now)
    addressable = {
        "email": counts["with_email"],
        "sms": counts["with_phone"],
        "push": repository.profiles_with_device(db, workspace_id=workspace_id),
    }
    channels = []
    for channel in CHANNELS:
        seen = dict(states.get(channel, {}))
        seen["never_asked"] = seen.get("never_asked", 0) + max(0, addressable[channel] - sum(seen.values()))
        channels.append(
            ChannelConsent(
                channel=channel,
                label=CHANNEL_LABELS[channel],
                addressable=addressable[channel],
                reachable=reachable.get(channel, 0),
                states={state: seen.get(state, 0) for state in STATES},
            )
        )
    return CustomerFigures(
        total=counts["total"],
        known=counts["known"],
        with_email=counts["with_email"],
        with_phone=counts["with_phone"],
        active=counts["active"],
        new=counts["new"],
        channels=channels,
    )
