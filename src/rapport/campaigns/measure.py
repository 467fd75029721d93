"""Measurement: goal conversions attributed to campaign entries, per-arm results against the control
group, and the automatic choice of an A/B/n winner.

A conversion is the campaign's ``goal_event`` by a recipient within ``goal_days`` of their entry, counted
once per entry, for every arm including control (intention to treat: a variant member converts whether or
not the message reached them, which is what makes the comparison with control fair).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from rapport.accounts import definitions
from rapport.campaigns import assign, stats
from rapport.campaigns import repository as repo
from rapport.campaigns.schemas import ArmRead, CampaignStats, IntervalRead
from rapport.campaigns.service import MEASURED, SENDING, TESTING
from rapport.collect.processor import BatchApplied
from rapport.kit.clock import as_utc
from rapport.models import Campaign

SENT_STATUSES = ("sent", "delivered", "unknown")


def _revenue(properties: Any, key: str) -> float:
    try:
        return float((properties or {}).get(key) or 0)
    except (TypeError, ValueError):
        return 0.0


def on_events(batch: BatchApplied) -> None:
    """After-apply hook: attribute goal events to the open campaign entries of their profiles."""
    db = batch.db
    if batch.event_names is not None and not any(batch.event_names):
        return  # only unnamed events (identify, page, …): none can be a goal, spare the two reads
    # kept by the processor's batch while the workspace's definitions are unchanged (accounts.definitions)
    campaigns = definitions.cached(
        db,
        batch.workspace_id,
        "campaigns.goals",
        lambda: tuple(repo.goal_campaigns(db, workspace_id=batch.workspace_id, statuses=MEASURED)),
    )
    if not campaigns:
        return
    by_goal: dict[str, list[repo.GoalCampaign]] = {}
    for campaign in campaigns:
        by_goal.setdefault(campaign.goal_event, []).append(campaign)
    events = repo.events_named(db, event_ids=batch.event_ids, names=set(by_goal))
    if events:
        attribute(db, campaigns_by_goal=by_goal, events=events, now=batch.runtime.clock.now())


def attribute(
    db: Session,
    *,
    campaigns_by_goal: dict[str, list[repo.GoalCampaign]],
    events: Iterable[Any],
    now: datetime,
) -> int:
    """Record a conversion for each (campaign, entry) a goal event falls in; returns how many."""
    made = 0
    events = sorted(events, key=lambda e: as_utc(e.timestamp))
    for event in events:
        at = as_utc(event.timestamp)
        campaigns = {c.id: c for c in campaigns_by_goal.get(event.event, [])}
        longest = max((c.goal_days for c in campaigns.values()), default=0)
        entries = repo.open_entries(
            db,
            campaign_ids=list(campaigns),
            profile_ids=[event.profile_id],
            since=at - timedelta(days=longest),
        )
        latest: dict[int, Any] = {}
        for entry in entries:
            campaign = campaigns[entry.campaign_id]
            entered = as_utc(entry.entered_at)
            if not (entered <= at <= entered + timedelta(days=campaign.goal_days)):
                continue
            if entry.campaign_id not in latest or as_utc(latest[entry.campaign_id].entered_at) < entered:
                latest[entry.campaign_id] = entry
        for campaign_id, entry in latest.items():
            made += repo.insert_conversion(
                db,
                {
                    "workspace_id": campaigns[campaign_id].workspace_id,
                    "campaign_id": campaign_id,
                    "recipient_id": entry.id,
                    "profile_id": entry.profile_id,
                    "variant": entry.variant,
                    "event_pk": event.id,
                    "revenue": _revenue(event.properties, campaigns[campaign_id].goal_revenue_property),
                    "converted_at": at,
                    "created_at": now,
                },
            )
    return made


# -- results --------------------------------------------------------------------------------------------


def _successes(metric: str, *, conversions: int, opened: int, clicked: int) -> int:
    return {"conversion": conversions, "click": clicked, "open": opened}[metric]


def campaign_stats(db: Session, *, campaign: Campaign, names: dict[str, str] | None = None) -> CampaignStats:
    """Per-arm results with 95 % intervals, lift against control, and Thompson P(best)."""
    metric = str((campaign.experiment or {}).get("metric") or "conversion")
    recipients = repo.recipients_by_arm(db, campaign_id=campaign.id)
    messages = repo.messages_by_arm(db, workspace_id=campaign.workspace_id, campaign_id=campaign.id)
    conversions = repo.conversions_by_arm(db, campaign_id=campaign.id)
    names = names or {v.key: v.name for v in repo.variants_of(db, campaign_id=campaign.id)}
    keys = sorted(set(names) | {k for k, _ in recipients if k and k != assign.CONTROL})
    waiting = sum(n for (variant, state), n in recipients.items() if state in {repo.WAITING, repo.PENDING})

    def arm(key: str) -> ArmRead:
        n = sum(
            count
            for (variant, state), count in recipients.items()
            if variant == key and state != repo.WAITING
        )
        m = messages.get(key, {})
        k, revenue = conversions.get(key, (0, 0.0))
        sent = sum(m.get(s, 0) for s in SENT_STATUSES)
        interval = stats.wilson(
            _successes(metric, conversions=k, opened=m.get("opened", 0), clicked=m.get("clicked", 0)), n
        )
        return ArmRead(
            key=key,
            name=names.get(key, "Control group" if key == assign.CONTROL else key),
            recipients=n,
            sent=sent,
            delivered=m.get("delivered_at", 0),
            opened=m.get("opened", 0),
            clicked=m.get("clicked", 0),
            skipped=m.get("skipped", 0),
            failed=m.get("dead", 0) + m.get("failed", 0),
            conversions=k,
            revenue=round(revenue, 2),
            conversion_rate=stats.rate(k, n),
            conversion_interval=IntervalRead(low=interval.low, high=interval.high),
        )

    arms = [arm(key) for key in keys]
    control = arm(assign.CONTROL) if any(v == assign.CONTROL for v, _ in recipients) else None

    def successes(a: ArmRead) -> int:
        return _successes(metric, conversions=a.conversions, opened=a.opened, clicked=a.clicked)

    probabilities = stats.prob_best(
        [successes(a) for a in arms], [a.recipients for a in arms], seed=campaign.id
    )
    enriched: list[ArmRead] = []
    for index, a in enumerate(arms):
        update: dict[str, Any] = {"probability_best": probabilities[index] if len(arms) > 1 else None}
        if control is not None and control.recipients and a.recipients:
            k1, n1, k2, n2 = successes(a), a.recipients, successes(control), control.recipients
            diff = stats.difference_interval(k1, n1, k2, n2)
            p_control = stats.rate(k2, n2)
            update |= {
                "lift": stats.rate(k1, n1) - p_control,
                "lift_interval": IntervalRead(low=diff.low, high=diff.high),
                "relative_lift": (stats.rate(k1, n1) / p_control - 1) if p_control else None,
                "p_value": stats.z_test(k1, n1, k2, n2),
            }
        enriched.append(a.model_copy(update=update))
    total_messages = sum(a.sent for a in enriched)
    revenue = sum(a.revenue for a in enriched)
    cost = (
        round(total_messages * campaign.cost_per_message, 2)
        if campaign.cost_per_message is not None
        else None
    )
    incremental_conversions = incremental_revenue = None
    if control is not None and control.recipients:
        treated = sum(a.recipients for a in enriched)
        control_rate = control.conversions / control.recipients
        incremental_conversions = sum(a.conversions for a in enriched) - control_rate * treated
        incremental_revenue = revenue - (control.revenue / control.recipients) * treated
    gain = incremental_revenue if incremental_revenue is not None else revenue
    roi = (gain - cost) / cost if cost else None
    return CampaignStats(
        campaign_id=campaign.id,
        status=campaign.status,
        metric=metric,
        arms=enriched,
        control=control,
        waiting=waiting,
        recipients=sum(a.recipients for a in enriched) + (control.recipients if control else 0),
        messages=total_messages,
        conversions=sum(a.conversions for a in enriched),
        revenue=round(revenue, 2),
        cost=cost,
        roi=roi,
        incremental_conversions=incremental_conversions,
        incremental_revenue=round(incremental_revenue, 2) if incremental_revenue is not None else None,
    )


def decide_winner(db: Session, *, campaign: Campaign, now: datetime) -> stats.Winner | None:
    """Pick the A/B/n winner from the test phase and, when configured, release the waiting recipients to
    it (the broadcast goes back to sending). None when there is nothing to decide."""
    if campaign.winner_variant is not None:
        return None
    experiment = campaign.experiment or {}
    result = campaign_stats(db, campaign=campaign)
    if not result.arms:
        return None
    metric = result.metric
    arms = [
        stats.Arm(
            a.key,
            a.recipients,
            _successes(metric, conversions=a.conversions, opened=a.opened, clicked=a.clicked),
        )
        for a in result.arms
    ]
    winner = stats.pick_winner(arms, method=str(experiment.get("method") or "significance"), seed=campaign.id)
    campaign.winner_variant = winner.key
    campaign.winner_decided_at = now
    campaign.status_reason = f"winner {winner.key}: {winner.reason}"
    campaign.updated_at = now
    if campaign.kind == "broadcast" and campaign.status == TESTING:
        if experiment.get("send_winner", True):
            repo.release_waiting(db, campaign_id=campaign.id)
            campaign.status = SENDING
        else:
            campaign.status = "sent"
            campaign.finished_at = now
    db.flush()
    return winner


def test_phase_over(campaign: Campaign, now: datetime) -> bool:
    """Whether a campaign's A/B/n test phase has run its ``test_hours``."""
    experiment = campaign.experiment or {}
    if campaign.started_at is None or campaign.winner_variant is not None:
        return False
    hours = float(experiment.get("test_hours") or 24)
    return as_utc(campaign.started_at) + timedelta(hours=hours) <= now
