"""Consent: record statements in the log, keep subscription state, decide whether a message may go.

Every change goes through ``record`` so that the state and the append-only log (R15) never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from rapport.audit import service as audit_service
from rapport.consent import repository as repo
from rapport.consent import rules
from rapport.consent.rules import Decision, SubscriptionView, TopicRule
from rapport.errors import NotFound, ValidationFailed
from rapport.models import ConsentRecord, Profile, Subscription, Topic, Workspace


@dataclass(frozen=True, slots=True)
class Statement:
    """One consent statement to record."""

    channel: str
    action: str
    topic: str = ""
    source: str = "api"
    actor: str = "system"
    wording: str | None = None
    wording_version: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    paused_until: datetime | None = None
    details: Mapping[str, Any] | None = None


def _check_channel(channel: str, *, allow_any: bool = False) -> None:
    if channel in rules.CHANNELS or (allow_any and channel == rules.ANY_CHANNEL):
        return
    raise ValidationFailed(f"unknown channel {channel!r}", details={"known": list(rules.CHANNELS)})


def get_profile(db: Session, *, workspace_id: int, profile_id: int) -> Profile:
    """Return the live profile (following merges) or raise NotFound."""
    profile = repo.get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    if profile is None:
        raise NotFound("profile not found")
    return profile


def record(
    db: Session, *, workspace_id: int, profile_id: int, statement: Statement, now: datetime
) -> ConsentRecord:
    """Apply one statement: update the subscription row and append the consent log entry; audited (R26)."""
    _check_channel(statement.channel, allow_any=bool(statement.topic))
    if statement.action not in rules.ACTIONS:
        raise ValidationFailed(
            f"unknown consent action {statement.action!r}", details={"known": list(rules.ACTIONS)}
        )
    if statement.topic and repo.get_topic(db, workspace_id=workspace_id, key=statement.topic) is None:
        raise ValidationFailed(f"unknown topic {statement.topic!r}")
    profile = get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    row = repo.get_subscription(
        db,
        workspace_id=workspace_id,
        profile_id=profile.id,
        channel=statement.channel,
        topic=statement.topic,
        for_update=True,
    )
    before = row.state if row else None
    after = rules.state_after(statement.action, before)
    if row is None:
        row = Subscription(
            workspace_id=workspace_id,
            profile_id=profile.id,
            channel=statement.channel,
            topic=statement.topic,
            state=after,
        )
        db.add(row)
    row.state = after
    row.updated_at = now
    row.source = statement.source
    if statement.action == rules.PAUSE:
        row.paused_until = statement.paused_until
    elif statement.action == rules.GRANT:
        row.paused_until = None
    entry = ConsentRecord(
        workspace_id=workspace_id,
        profile_id=profile.id,
        channel=statement.channel,
        topic=statement.topic,
        action=statement.action,
        state_before=before,
        state_after=after,
        source=statement.source,
        actor=statement.actor,
        wording=statement.wording,
        wording_version=statement.wording_version,
        ip=statement.ip,
        user_agent=(statement.user_agent or "")[:400] or None,
        details=dict(statement.details or {}),
        created_at=now,
    )
    db.add(entry)
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=statement.actor,
        action=f"consent.{statement.action}",
        target_type="profile",
        target_id=profile.id,
        details={
            "channel": statement.channel,
            "topic": statement.topic,
            "source": statement.source,
            "before": before,
            "after": after,
        },
    )
    return entry


def withdraw_everywhere(
    db: Session,
    *,
    workspace_id: int,
    profile_id: int,
    source: str,
    actor: str,
    now: datetime,
    ip: str | None = None,
) -> list[ConsentRecord]:
    """Withdraw consent on every channel (e.g. a complaint, or "unsubscribe from everything")."""
    return [
        record(
            db,
            workspace_id=workspace_id,
            profile_id=profile_id,
            now=now,
            statement=Statement(channel=channel, action=rules.WITHDRAW, source=source, actor=actor, ip=ip),
        )
        for channel in rules.CHANNELS
    ]


def pause(
    db: Session,
    *,
    workspace_id: int,
    profile_id: int,
    channel: str,
    weeks: int,
    source: str,
    actor: str,
    now: datetime,
) -> ConsentRecord:
    """Pause marketing on a channel for some weeks without unsubscribing."""
    if not 1 <= weeks <= 52:
        raise ValidationFailed("pause between 1 and 52 weeks")
    return record(
        db,
        workspace_id=workspace_id,
        profile_id=profile_id,
        now=now,
        statement=Statement(
            channel=channel,
            action=rules.PAUSE,
            source=source,
            actor=actor,
            paused_until=now + timedelta(weeks=weeks),
            details={"weeks": weeks},
        ),
    )


def list_subscriptions(db: Session, *, workspace_id: int, profile_id: int) -> Sequence[Subscription]:
    """Return a profile's subscription rows."""
    profile = get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    return repo.list_subscriptions(db, workspace_id=workspace_id, profile_id=profile.id)


def list_log(
    db: Session, *, workspace_id: int, profile_id: int, limit: int = 100, offset: int = 0
) -> Sequence[ConsentRecord]:
    """Return a profile's consent log, newest first."""
    profile = get_profile(db, workspace_id=workspace_id, profile_id=profile_id)
    return repo.list_log(db, workspace_id=workspace_id, profile_id=profile.id, limit=limit, offset=offset)


def _topic_rule(topic: Topic | None) -> TopicRule | None:
    return TopicRule(key=topic.key, opt_in=topic.opt_in, is_service=topic.is_service) if topic else None


def _view(row: Subscription | None) -> SubscriptionView | None:
    return SubscriptionView(state=row.state, paused_until=row.paused_until) if row else None


def can_send(
    db: Session,
    *,
    workspace: Workspace,
    profile_id: int,
    channel: str,
    topic: str | None = None,
    marketing: bool = True,
    now: datetime,
    is_confirmation: bool = False,
) -> Decision:
    """Decide whether a message may go to this profile on this channel now (checked again at claim time)."""
    _check_channel(channel)
    topic_row = repo.get_topic(db, workspace_id=workspace.id, key=topic) if topic else None
    if topic and topic_row is None:
        return Decision(False, f"unknown topic {topic}")
    channel_row = repo.get_subscription(
        db, workspace_id=workspace.id, profile_id=profile_id, channel=channel, topic=""
    )
    topic_state = None
    if topic:
        topic_state = repo.get_subscription(
            db, workspace_id=workspace.id, profile_id=profile_id, channel=channel, topic=topic
        ) or repo.get_subscription(
            db, workspace_id=workspace.id, profile_id=profile_id, channel=rules.ANY_CHANNEL, topic=topic
        )
    settings = (workspace.settings or {}).get("consent", {})
    return rules.decide(
        channel=channel,
        marketing=marketing,
        channel_state=_view(channel_row),
        topic=_topic_rule(topic_row),
        topic_state=_view(topic_state),
        email_requires_opt_in=bool(settings.get("email_requires_opt_in", True)),
        now=now,
        is_confirmation=is_confirmation,
    )


@dataclass(frozen=True, slots=True)
class SendAsk:
    """One question for :func:`can_send_many`: may this message go to this profile?"""

    profile_id: int
    channel: str
    topic: str = ""
    marketing: bool = True
    is_confirmation: bool = False


def can_send_many(
    db: Session, *, workspace: Workspace, asks: Sequence[SendAsk], now: datetime
) -> list[Decision]:
    """Decide :func:`can_send` for many messages of one workspace with two queries (claim-time batches);
    answers in the order of ``asks``."""
    for ask in asks:
        _check_channel(ask.channel)
    if not asks:
        return []
    topics = repo.topics_by_key(db, workspace_id=workspace.id, keys={a.topic for a in asks if a.topic})
    channels = {a.channel for a in asks}
    if any(a.topic for a in asks):
        channels.add(rules.ANY_CHANNEL)
    views: dict[tuple[int, str, str], SubscriptionView] = {
        (pid, channel, topic): SubscriptionView(state=state, paused_until=paused)
        for pid, channel, topic, state, paused in repo.subscriptions_for(
            db, workspace_id=workspace.id, profile_ids={a.profile_id for a in asks}, channels=channels
        )
    }
    settings = (workspace.settings or {}).get("consent", {})
    requires_opt_in = bool(settings.get("email_requires_opt_in", True))
    out: list[Decision] = []
    for ask in asks:
        topic_row = topics.get(ask.topic) if ask.topic else None
        if ask.topic and topic_row is None:
            out.append(Decision(False, f"unknown topic {ask.topic}"))
            continue
        topic_state = None
        if ask.topic:
            topic_state = views.get((ask.profile_id, ask.channel, ask.topic)) or views.get(
                (ask.profile_id, rules.ANY_CHANNEL, ask.topic)
            )
        out.append(
            rules.decide(
                channel=ask.channel,
                marketing=ask.marketing,
                channel_state=views.get((ask.profile_id, ask.channel, "")),
                topic=_topic_rule(topic_row),
                topic_state=topic_state,
                email_requires_opt_in=requires_opt_in,
                now=now,
                is_confirmation=ask.is_confirmation,
            )
        )
    return out


def fold_merge(db: Session, *, workspace_id: int, survivor_id: int, merged_id: int, now: datetime) -> None:
    """Fold a merged-away profile's subscriptions into the survivor: the newer statement wins, and on a tie
    the stricter one (a customer who tires of us gets less, never more)."""
    mine = {
        (s.channel, s.topic): s
        for s in repo.list_subscriptions(db, workspace_id=workspace_id, profile_id=survivor_id)
    }
    strictness = {rules.UNSUBSCRIBED: 3, rules.PENDING: 2, rules.NEVER_ASKED: 1, rules.SUBSCRIBED: 0}
    for theirs in list(repo.list_subscriptions(db, workspace_id=workspace_id, profile_id=merged_id)):
        ours = mine.get((theirs.channel, theirs.topic))
        if ours is None:
            theirs.profile_id = survivor_id
            continue
        newer = theirs.updated_at > ours.updated_at
        tie_stricter = (
            theirs.updated_at == ours.updated_at and strictness[theirs.state] > strictness[ours.state]
        )
        if (newer or tie_stricter) and theirs.state != ours.state:
            db.add(
                ConsentRecord(
                    workspace_id=workspace_id,
                    profile_id=survivor_id,
                    channel=theirs.channel,
                    topic=theirs.topic,
                    action=rules.WITHDRAW
                    if theirs.state == rules.UNSUBSCRIBED
                    else rules.GRANT
                    if theirs.state == rules.SUBSCRIBED
                    else rules.REQUEST,
                    state_before=ours.state,
                    state_after=theirs.state,
                    source="merge",
                    actor="system",
                    details={"merged_profile_id": merged_id},
                    created_at=now,
                )
            )
            ours.state = theirs.state
            ours.paused_until = theirs.paused_until
            ours.updated_at = theirs.updated_at
            ours.source = "merge"
        db.delete(theirs)
    db.flush()


SIGNAL_CHANNEL_WORDS = {
    "email": "email",
    "sms": "sms",
    "text": "sms",
    "push": "push",
    "inapp": "inapp",
    "all": "*",
    "marketing": "*",
    "everything": "*",
}


def apply_signals(
    db: Session,
    *,
    workspace_id: int,
    profile_id: int,
    withdrawals: Iterable[Mapping[str, Any]],
    grants: Iterable[Mapping[str, Any]] = (),
    source: str,
    actor: str,
    now: datetime,
    ip: str | None = None,
) -> list[ConsentRecord]:
    """Apply consent statements found in events (``Event.extra``'s ``_consent_withdrawals`` and, only from
    senders allowed to grant, ``_consent_grants``). A subject names a channel, "all", or a topic key."""
    written: list[ConsentRecord] = []
    known_topics = {t.key for t in repo.list_topics(db, workspace_id)}
    for signals, action in ((withdrawals, rules.WITHDRAW), (grants, rules.GRANT)):
        for signal in signals:
            subject = str(signal.get("subject", "")).strip().lower().replace("-", "").replace("_", "")
            channel = SIGNAL_CHANNEL_WORDS.get(subject)
            base = {"source": source, "actor": actor, "ip": ip, "details": {"path": signal.get("path")}}
            if channel == "*":
                if action == rules.WITHDRAW:
                    written += withdraw_everywhere(
                        db,
                        workspace_id=workspace_id,
                        profile_id=profile_id,
                        source=source,
                        actor=actor,
                        now=now,
                        ip=ip,
                    )
                continue
            if channel:
                statement = Statement(channel=channel, action=action, **base)  # type: ignore[arg-type]
            else:
                topic = next(
                    (k for k in known_topics if k.replace("-", "").replace("_", "").lower() == subject), None
                )
                if topic is None:
                    continue
                statement = Statement(channel=rules.ANY_CHANNEL, topic=topic, action=action, **base)  # type: ignore[arg-type]
            written.append(
                record(db, workspace_id=workspace_id, profile_id=profile_id, statement=statement, now=now)
            )
    return written


def create_topic(
    db: Session,
    *,
    workspace_id: int,
    key: str,
    name: str,
    description: str = "",
    opt_in: bool = True,
    is_service: bool = False,
    actor: str,
) -> Topic:
    """Create a subscription topic."""
    key = key.strip().lower()
    if not key or not key.replace("-", "").replace("_", "").isalnum() or len(key) > 64:
        raise ValidationFailed("topic key must be letters, digits, - or _ (at most 64)")
    if repo.get_topic(db, workspace_id=workspace_id, key=key):
        raise ValidationFailed(f"topic {key!r} exists")
    topic = Topic(
        workspace_id=workspace_id,
        key=key,
        name=name.strip() or key,
        description=description,
        opt_in=opt_in,
        is_service=is_service,
    )
    db.add(topic)
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="topic.created",
        target_type="topic",
        target_id=topic.id,
        details={"key": key, "opt_in": opt_in, "is_service": is_service},
    )
    return topic


def list_topics(db: Session, *, workspace_id: int) -> Sequence[Topic]:
    """Return the workspace's live topics."""
    return repo.list_topics(db, workspace_id)


def get_topic(db: Session, *, workspace_id: int, topic_id: int) -> Topic:
    """Return a topic by id or raise NotFound."""
    topic = repo.get_topic_by_id(db, workspace_id=workspace_id, topic_id=topic_id)
    if topic is None:
        raise NotFound("topic not found")
    return topic
