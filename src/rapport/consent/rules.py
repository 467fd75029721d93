"""Pure consent rules: states, what a statement changes, and whether a message may be sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
NEVER_ASKED = "never_asked"
PENDING = "pending"
STATES = (SUBSCRIBED, UNSUBSCRIBED, NEVER_ASKED, PENDING)

CHANNELS = ("email", "sms", "push", "inapp", "webhook")
#: Channels on which marketing needs an explicit yes whatever the workspace says (PECR/TCPA for SMS).
ALWAYS_OPT_IN = frozenset({"sms"})
#: Channels where a channel-level withdrawal also stops service messages (SMS STOP means stop).
WITHDRAWAL_STOPS_SERVICE = frozenset({"sms", "push"})

ANY_CHANNEL = ""  # the channel of a topic row that holds for every channel

GRANT = "granted"
WITHDRAW = "withdrawn"
REQUEST = "requested"
CONFIRM = "confirmed"
PAUSE = "paused"
ACTIONS = (GRANT, WITHDRAW, REQUEST, CONFIRM, PAUSE)


@dataclass(frozen=True, slots=True)
class Decision:
    """May this message go? ``reason`` says why not, for the skip record."""

    allowed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TopicRule:
    """What the rules need to know about a topic."""

    key: str
    opt_in: bool
    is_service: bool


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """The state of one (channel, topic) row, or None when the person was never asked."""

    state: str
    paused_until: datetime | None = None


def state_after(action: str, before: str | None) -> str:
    """Return the state a consent action leads to."""
    if action in {GRANT, CONFIRM}:
        return SUBSCRIBED
    if action == WITHDRAW:
        return UNSUBSCRIBED
    if action == REQUEST:
        return SUBSCRIBED if before == SUBSCRIBED else PENDING
    if action == PAUSE:
        return before or NEVER_ASKED
    raise ValueError(f"unknown consent action {action!r}")


def decide(
    *,
    channel: str,
    marketing: bool,
    channel_state: SubscriptionView | None,
    topic: TopicRule | None,
    topic_state: SubscriptionView | None,
    email_requires_opt_in: bool,
    now: datetime,
    is_confirmation: bool = False,
) -> Decision:
    """Decide whether a message on ``channel`` (about ``topic``) may be sent to someone in these states.

    A customer who tires of us gets less, never more: every doubt answers no for marketing.
    """
    state = channel_state.state if channel_state else NEVER_ASKED
    if is_confirmation:
        # Double opt-in: the confirmation itself is the one message a pending address may get.
        return Decision(
            state in {PENDING, SUBSCRIBED}, "" if state in {PENDING, SUBSCRIBED} else f"channel {state}"
        )
    service = not marketing or (topic is not None and topic.is_service)
    if state == UNSUBSCRIBED and (not service or channel in WITHDRAWAL_STOPS_SERVICE):
        return Decision(False, f"unsubscribed from {channel}")
    if topic is not None and topic_state is not None and topic_state.state == UNSUBSCRIBED:
        return Decision(False, f"unsubscribed from topic {topic.key}")
    if service:
        return Decision(True)
    if state == PENDING:
        return Decision(False, f"{channel} opt-in not confirmed yet")
    needs_yes = (
        channel in ALWAYS_OPT_IN or (channel == "email" and email_requires_opt_in) or channel == "push"
    )
    if state != SUBSCRIBED and (needs_yes or state != NEVER_ASKED):
        return Decision(False, f"no {channel} consent ({state})")
    if channel_state and channel_state.paused_until and channel_state.paused_until > now:
        return Decision(False, f"{channel} paused until {channel_state.paused_until.date().isoformat()}")
    if topic is not None and topic.opt_in and (topic_state is None or topic_state.state != SUBSCRIBED):
        return Decision(False, f"not opted in to topic {topic.key}")
    return Decision(True)
