"""Before sending: which of an audience can be reached on a campaign's channel (address, consent,
suppression, frequency caps already reached), counted in a few queries. The Deliverer decides again per message at claim time."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.collect import identity as ident
from rapport.consent import repository as consent_repo
from rapport.consent import rules
from rapport.db.planner import same_workspace
from rapport.messaging import caps as caps_rules
from rapport.models import Campaign, Profile, SendCounter, Subscription, Suppression, Workspace

CHUNK = 900


def classify(
    db: Session, *, workspace: Workspace, campaign: Campaign, profile_ids: Sequence[int], now: datetime
) -> dict[str, int]:
    """Count ``reachable``, ``no_address``, ``no_consent`` and ``suppressed`` among ``profile_ids``."""
    counts = {"reachable": 0, "no_address": 0, "no_consent": 0, "suppressed": 0, "capped": 0}
    try:
        caps = caps_rules.applicable(caps_rules.caps_from_settings(workspace.settings), campaign.channel)
    except ValueError:
        caps = []
    if campaign.message_kind != "marketing":
        caps = []  # service messages are never capped
    fallback = ZoneInfo(workspace.timezone) if workspace.timezone else ZoneInfo("UTC")
    topic = (
        consent_repo.get_topic(db, workspace_id=workspace.id, key=campaign.topic) if campaign.topic else None
    )
    topic_rule = (
        rules.TopicRule(key=topic.key, opt_in=topic.opt_in, is_service=topic.is_service) if topic else None
    )
    settings = (workspace.settings or {}).get("consent", {})
    opt_in = bool(settings.get("email_requires_opt_in", True))
    kind = {"email": "email", "sms": "phone"}.get(campaign.channel)
    for start in range(0, len(profile_ids), CHUNK):
        chunk = list(profile_ids[start : start + CHUNK])
        addresses: dict[int, str | None] = {}
        zones: dict[int, ZoneInfo] = {}
        address_column = Profile.email if campaign.channel == "email" else Profile.phone
        for pid, address, tz in db.execute(
            select(Profile.id, address_column, Profile.timezone).where(Profile.id.in_(chunk))
        ).all():
            addresses[int(pid)] = address
            if tz and caps:
                with contextlib.suppress(ValueError, KeyError):
                    zones[int(pid)] = ZoneInfo(tz)
        subscriptions: dict[tuple[int, str], Subscription] = {}
        for row in db.scalars(
            select(Subscription).where(
                same_workspace(Subscription.workspace_id, workspace.id),
                Subscription.profile_id.in_(chunk),
                Subscription.channel.in_([campaign.channel, rules.ANY_CHANNEL]),
            )
        ):
            subscriptions[(row.profile_id, f"{row.channel}/{row.topic}")] = row
        suppressed: set[str] = set()
        if kind is not None:
            hashes = {ident.suppression_hash(workspace.id, kind, a): a for a in addresses.values() if a}
            if hashes:
                suppressed = {
                    hashes[h]
                    for h in db.scalars(
                        select(Suppression.value_hash).where(
                            Suppression.workspace_id == workspace.id,
                            Suppression.kind == kind,
                            Suppression.value_hash.in_(list(hashes)),
                        )
                    )
                }
        used: dict[int, dict[tuple[str, str], int]] = {}
        if caps:
            for pid, channel, period, n in db.execute(
                select(
                    SendCounter.profile_id, SendCounter.channel, SendCounter.period, SendCounter.count
                ).where(SendCounter.workspace_id == workspace.id, SendCounter.profile_id.in_(chunk))
            ).all():
                used.setdefault(int(pid), {})[(channel, period)] = int(n)
        for pid in chunk:
            address = addresses.get(pid) if kind is not None else str(pid)
            if not address:
                counts["no_address"] += 1
                continue
            if address in suppressed:
                counts["suppressed"] += 1
                continue
            channel_row = subscriptions.get((pid, f"{campaign.channel}/"))
            topic_row = None
            if topic is not None:
                topic_row = subscriptions.get((pid, f"{campaign.channel}/{topic.key}")) or subscriptions.get(
                    (pid, f"{rules.ANY_CHANNEL}/{topic.key}")
                )
            decision = rules.decide(
                channel=campaign.channel,
                marketing=campaign.message_kind == "marketing",
                channel_state=_view(channel_row),
                topic=topic_rule,
                topic_state=_view(topic_row),
                email_requires_opt_in=opt_in,
                now=now,
            )
            if not decision.allowed:
                counts["no_consent"] += 1
            elif caps and _capped(caps, used.get(pid, {}), zones.get(pid) or fallback, now):
                counts["capped"] += 1
            else:
                counts["reachable"] += 1
    return counts


def _capped(
    caps: list[caps_rules.Cap], used: dict[tuple[str, str], int], zone: ZoneInfo, now: datetime
) -> bool:
    """Whether one more message would go over a frequency cap (the recipient's local day or week)."""
    return any(
        used.get((cap.channel, caps_rules.period_key(cap.per, now, zone)), 0) >= cap.limit for cap in caps
    )


def _view(row: Subscription | None) -> rules.SubscriptionView | None:
    return rules.SubscriptionView(state=row.state, paused_until=row.paused_until) if row else None
