"""The pure consent rules: a customer who tires of us gets less, never more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from rapport.consent import rules
from rapport.consent.rules import SubscriptionView, TopicRule

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
OFFERS = TopicRule(key="offers", opt_in=True, is_service=False)
NEWS = TopicRule(key="news", opt_in=False, is_service=False)
RECEIPTS = TopicRule(key="receipts", opt_in=False, is_service=True)


def decide(
    channel: str = "email",
    state: str | None = None,
    *,
    topic: TopicRule | None = None,
    topic_state: str | None = None,
    marketing: bool = True,
    requires_opt_in: bool = True,
    paused_until: datetime | None = None,
    confirmation: bool = False,
) -> rules.Decision:
    return rules.decide(
        channel=channel,
        marketing=marketing,
        channel_state=SubscriptionView(state, paused_until) if state else None,
        topic=topic,
        topic_state=SubscriptionView(topic_state) if topic_state else None,
        email_requires_opt_in=requires_opt_in,
        now=NOW,
        is_confirmation=confirmation,
    )


def test_marketing_email_needs_a_yes_by_default() -> None:
    assert decide(state=None) == rules.Decision(False, "no email consent (never_asked)")
    assert decide(state="subscribed").allowed
    assert decide(state=None, requires_opt_in=False).allowed  # a soft opt-in workspace


def test_sms_and_push_always_need_a_yes() -> None:
    for channel in ("sms", "push"):
        assert not decide(channel, None, requires_opt_in=False).allowed
        assert decide(channel, "subscribed").allowed


def test_pending_double_opt_in_gets_only_the_confirmation() -> None:
    assert decide(state="pending") == rules.Decision(False, "email opt-in not confirmed yet")
    assert decide(state="pending", confirmation=True).allowed
    assert not decide(state="unsubscribed", confirmation=True).allowed


def test_service_messages_ignore_marketing_consent_but_not_sms_stop() -> None:
    assert decide(state="unsubscribed", marketing=False).allowed  # a receipt by email
    assert decide(state=None, topic=RECEIPTS).allowed
    assert not decide("sms", "unsubscribed", marketing=False).allowed  # STOP means stop
    assert not decide(state="subscribed", topic=RECEIPTS, topic_state="unsubscribed").allowed


def test_topics_opt_in_and_opt_out() -> None:
    assert not decide(state="subscribed", topic=OFFERS).allowed
    assert decide(state="subscribed", topic=OFFERS, topic_state="subscribed").allowed
    assert decide(state="subscribed", topic=NEWS).allowed
    assert decide(state="subscribed", topic=NEWS, topic_state="unsubscribed") == rules.Decision(
        False, "unsubscribed from topic news"
    )


def test_a_pause_holds_marketing_until_it_ends() -> None:
    paused = decide(state="subscribed", paused_until=NOW + timedelta(days=3))
    assert not paused.allowed and "paused until" in paused.reason
    assert decide(state="subscribed", paused_until=NOW - timedelta(seconds=1)).allowed


states = st.sampled_from([None, *rules.STATES])


@given(
    channel=st.sampled_from(rules.CHANNELS),
    state=states,
    topic_state=states,
    topic=st.sampled_from([None, OFFERS, NEWS, RECEIPTS]),
    marketing=st.booleans(),
    soft=st.booleans(),
)
def test_withdrawing_never_widens_what_may_be_sent(
    channel: str,
    state: str | None,
    topic_state: str | None,
    topic: TopicRule | None,
    marketing: bool,
    soft: bool,
) -> None:
    before = decide(
        channel, state, topic=topic, topic_state=topic_state, marketing=marketing, requires_opt_in=not soft
    )
    after_channel = decide(
        channel,
        "unsubscribed",
        topic=topic,
        topic_state=topic_state,
        marketing=marketing,
        requires_opt_in=not soft,
    )
    after_topic = decide(
        channel,
        state,
        topic=topic,
        topic_state="unsubscribed" if topic else topic_state,
        marketing=marketing,
        requires_opt_in=not soft,
    )
    assert not (after_channel.allowed and not before.allowed)
    assert not (after_topic.allowed and not before.allowed)
    if marketing and (topic is None or not topic.is_service):
        assert not after_channel.allowed


def test_state_transitions() -> None:
    assert rules.state_after(rules.REQUEST, None) == "pending"
    assert rules.state_after(rules.REQUEST, "subscribed") == "subscribed"
    assert rules.state_after(rules.CONFIRM, "pending") == "subscribed"
    assert rules.state_after(rules.WITHDRAW, "subscribed") == "unsubscribed"
    assert rules.state_after(rules.PAUSE, "subscribed") == "subscribed"
