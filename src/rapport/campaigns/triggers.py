"""What fires triggered and date-relative campaigns: an ingested event (with property conditions), a
segment entry or exit, or a profile's date trait coming round.

Events and membership changes arrive inside the processing transaction (after-apply hook, membership
bus), so the entry and its outbox row commit with the change that caused them. Date triggers are scanned
by the worker (:class:`DateScan`): the same occurrence never enters twice (its entry key is the date).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import String, func, select
from sqlalchemy.orm import Session

from rapport.accounts import definitions
from rapport.campaigns import repository as repo
from rapport.campaigns import schedule, sending
from rapport.campaigns.schemas import DEFAULT_MAX_AGE_HOURS
from rapport.campaigns.service import ACTIVE, parse_where
from rapport.collect.processor import BatchApplied
from rapport.kit.clock import as_utc
from rapport.models import Campaign, Profile, Workspace
from rapport.segments.ast import Count, Did, Ever
from rapport.segments.evaluator import EventFact, ProfileFacts, evaluate
from rapport.segments.realtime import MembershipChange

log = logging.getLogger("rapport.campaigns.triggers")
_TRIGGERS_MEMO = "campaigns.active_triggers"


def _matcher(trigger: dict[str, Any]) -> Any:
    where = parse_where(trigger.get("where"))
    return Did(str(trigger["event"]), where, Count("at least", 1), Ever())


def active_triggers(
    db: Session, *, workspace_id: int, types: Collection[str]
) -> list[tuple[int, dict[str, Any]]]:
    """(id, trigger) of the workspace's active triggered campaigns whose trigger type is in ``types``.

    The processor's hooks ask this on every batch: two columns, not 50 full campaign rows (the campaign
    itself is loaded only when one of its triggers fires). Belongs in ``campaigns/repository.py``.
    """
    # kept for the current transaction only: the event and the segment hooks of one batch both ask
    transaction = db.get_transaction()
    held = db.info.get(_TRIGGERS_MEMO)
    if held is None or held[0] is not transaction:
        held = db.info[_TRIGGERS_MEMO] = (transaction, {})
    memo: dict[int, Any] = held[1]
    rows = memo.get(workspace_id)
    if rows is None:
        # the processor's batch keeps them while the workspace's definitions are unchanged
        # (accounts.definitions: any change of a campaign moves the revision)
        rows = memo[workspace_id] = definitions.cached(
            db, workspace_id, "campaigns.active_triggers", lambda: _read_triggers(db, workspace_id)
        )
    found = []
    for campaign_id, trigger in rows:
        if isinstance(trigger, dict) and trigger.get("type") in types:
            found.append((int(campaign_id), trigger))
    return found


def _read_triggers(db: Session, workspace_id: int) -> tuple[tuple[int, Any], ...]:
    return tuple(
        (int(campaign_id), trigger)
        for campaign_id, trigger in db.execute(
            select(Campaign.id, Campaign.trigger).where(
                Campaign.workspace_id == workspace_id,
                Campaign.kind == "triggered",
                Campaign.status == ACTIVE,
            )
        )
    )


def _live(db: Session, campaign_id: int) -> Campaign | None:
    """The full campaign of a trigger that fired, if it is still an active triggered one."""
    campaign = db.get(Campaign, campaign_id)
    if campaign is None or campaign.status != ACTIVE or campaign.kind != "triggered":
        return None
    return campaign


def _entry_plan(db: Session, workspace_id: int, campaign_id: int) -> tuple[Campaign, sending.Prepared] | None:
    """The campaign of a trigger that fired and its entry plan (arms, contents), if it is still an active
    triggered one. The processor's batch keeps both while the workspace's definitions are unchanged
    (accounts.definitions: any change of the campaign, its variants, templates or snippets moves them)."""
    return definitions.cached(
        db,
        workspace_id,
        f"campaigns.entry.{campaign_id}",
        lambda: _load_entry_plan(db, workspace_id, campaign_id),
    )


def _load_entry_plan(
    db: Session, workspace_id: int, campaign_id: int
) -> tuple[Campaign, sending.Prepared] | None:
    campaign = _live(db, campaign_id)
    if campaign is None:
        return None
    prepared = sending.prepare(db, campaign, triggered=True)
    if definitions.pinned(db, workspace_id) is not None:
        db.expunge(campaign)  # kept beyond this transaction: read only, never flushed by a later one
    return campaign, prepared


def event_matches(node: Any, event: EventFact, now: datetime) -> bool:
    """Whether one event satisfies a trigger's ``did "<event>" where …`` condition."""
    return evaluate(node, ProfileFacts(profile_id="0", events=(event,)), now)


def on_events(batch: BatchApplied) -> None:
    """After-apply hook: admit the profiles whose new events fire an active event-triggered campaign."""
    db = batch.db
    triggers = active_triggers(db, workspace_id=batch.workspace_id, types={"event"})
    if not triggers:
        return
    names = {str(trigger["event"]) for _id, trigger in triggers}
    if batch.event_names is not None:
        names &= {name for name in batch.event_names if name is not None}
    if not names:
        return  # no trigger's event is in this batch
    events = repo.events_named(db, event_ids=batch.event_ids, names=names)
    if not events:
        return
    now = batch.runtime.clock.now()
    by_name: dict[str, list[Any]] = {}
    for row in sorted(events, key=lambda r: (as_utc(r.timestamp), r.id)):
        by_name.setdefault(row.event, []).append(row)
    for campaign_id, trigger in sorted(triggers, key=lambda t: t[0]):
        rows = by_name.get(str(trigger["event"]))
        if not rows:
            continue  # only triggers whose event is in this batch are parsed and evaluated
        try:
            node = _matcher(trigger)
        except Exception:  # a trigger that no longer parses must not stop processing
            log.exception("campaign %s has an invalid trigger", campaign_id)
            continue
        entries: list[sending.Entry] = []
        oldest = now - timedelta(hours=float(trigger.get("max_age_hours") or DEFAULT_MAX_AGE_HOURS))
        for row in rows:
            at = as_utc(row.timestamp)
            if at < oldest:
                continue  # late or historical data (an import of last year's orders) fires nothing
            fact = EventFact(row.event, at, row.properties or {})
            if not event_matches(node, fact, now):
                continue
            entries.append(
                sending.Entry(
                    profile_id=int(row.profile_id),
                    entry_key=f"ev:{row.message_id}",
                    at=at if at <= now else now,
                    extra={
                        "event": {
                            "name": row.event,
                            "timestamp": at.isoformat(),
                            "properties": row.properties or {},
                        }
                    },
                )
            )
        plan = _entry_plan(db, batch.workspace_id, campaign_id) if entries else None
        if plan is not None:
            sending.enter_many(db, campaign=plan[0], entries=entries, now=now, prepared=plan[1])


def on_membership(db: Session, changes: list[MembershipChange]) -> None:
    """Membership-bus subscriber: admit profiles entering or leaving a segment that triggers a campaign."""
    by_workspace: dict[int, list[MembershipChange]] = {}
    for change in changes:
        by_workspace.setdefault(change.workspace_id, []).append(change)
    for workspace_id, items in by_workspace.items():
        moved = {(change.segment_id, change.kind) for change in items}
        triggers = active_triggers(db, workspace_id=workspace_id, types={"segment_entry", "segment_exit"})
        for campaign_id, trigger in sorted(triggers, key=lambda t: t[0]):
            wanted = "entered" if trigger["type"] == "segment_entry" else "exited"
            segment_id = int(trigger["segment_id"])
            if (segment_id, wanted) not in moved:
                continue  # most triggers watch other segments: their campaigns are not loaded
            entries = [
                sending.Entry(
                    profile_id=change.profile_id,
                    entry_key=f"seg:{segment_id}:{wanted}:{as_utc(change.at).isoformat()}",
                    at=change.at,
                    extra={"segment": {"id": segment_id, "name": change.segment_name, "change": wanted}},
                )
                for change in items
                if change.segment_id == segment_id and change.kind == wanted
            ]
            plan = _entry_plan(db, workspace_id, campaign_id) if entries else None
            if plan is not None:
                sending.enter_many(
                    db, campaign=plan[0], entries=entries, now=max(e.at for e in entries), prepared=plan[1]
                )


# -- date-relative ---------------------------------------------------------------------------------------


def _date_of(value: Any) -> date | None:
    text = str(value or "")[:10]
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def occurrence(trait_day: date, *, offset_days: int, anniversary: bool, local_today: date) -> date | None:
    """The trait date this campaign fires for today (local), or None: fires on ``trait_day + offset``
    (for an anniversary: this year's, or next year's when the offset reaches across the new year)."""
    target = local_today - timedelta(days=offset_days)  # the trait date that fires today
    if not anniversary:
        return trait_day if trait_day == target else None
    month, day = trait_day.month, trait_day.day
    if (month, day) == (2, 29):
        leap = target.year % 4 == 0 and (target.year % 100 != 0 or target.year % 400 == 0)
        month, day = (2, 29) if leap else (2, 28)
    return target if (target.month, target.day) == (month, day) else None


def date_candidates(
    db: Session, *, campaign: Campaign, now: datetime, limit: int = 50_000
) -> list[tuple[int, Any, str | None]]:
    """Profiles whose trait could fire today somewhere on earth: (id, trait value, timezone)."""
    trait = str(campaign.trigger["trait"])
    offset = int(campaign.trigger.get("offset_days") or 0)
    anniversary = bool(campaign.trigger.get("anniversary"))
    utc_today = now.astimezone(UTC).date()
    days = [utc_today + timedelta(days=d) - timedelta(days=offset) for d in (-1, 0, 1)]
    value = func.coalesce(Profile.traits[trait].as_string(), Profile.computed[trait].as_string())
    if anniversary:
        keys = sorted(
            {d.strftime("%m-%d") for d in days}
            | ({"02-29"} if any(d.strftime("%m-%d") == "02-28" for d in days) else set())
        )
        condition = func.substr(value, 6, 5).in_(keys)
    else:
        condition = func.substr(value, 1, 10).in_([d.isoformat() for d in days])
    stmt = (
        select(Profile.id, value.cast(String), Profile.timezone)
        .where(Profile.workspace_id == campaign.workspace_id, Profile.merged_into_id.is_(None), condition)
        .limit(limit)
    )
    return [(int(pid), raw, tz) for pid, raw, tz in db.execute(stmt).all()]


def scan_date_campaign(db: Session, *, campaign: Campaign, now: datetime) -> int:
    """Admit the profiles whose date trait comes round today in their timezone; returns how many entered."""
    workspace = db.get(Workspace, campaign.workspace_id)
    fallback = workspace.timezone if workspace else "UTC"
    offset = int(campaign.trigger.get("offset_days") or 0)
    anniversary = bool(campaign.trigger.get("anniversary"))
    at = schedule.parse_local_time(str(campaign.trigger.get("at") or "09:00"))
    entries: list[sending.Entry] = []
    for profile_id, raw, tz_name in date_candidates(db, campaign=campaign, now=now):
        trait_day = _date_of(raw)
        if trait_day is None:
            continue
        tz = schedule.zone(tz_name, fallback)
        local_today = now.astimezone(tz).date()
        if (
            occurrence(trait_day, offset_days=offset, anniversary=anniversary, local_today=local_today)
            is None
        ):
            continue
        entries.append(
            sending.Entry(
                profile_id=profile_id,
                entry_key=f"date:{local_today.isoformat()}",
                at=now,
                run_at=max(schedule.on_local_day(local_today, at, tz), now),
                extra={
                    "occasion": {
                        "trait": campaign.trigger["trait"],
                        "date": trait_day.isoformat(),
                        "day": local_today.isoformat(),
                    }
                },
            )
        )
    entered = 0
    for start in range(0, len(entries), 1000):
        arms = sending.enter_many(db, campaign=campaign, entries=entries[start : start + 1000], now=now)
        entered += sum(arm is not None for arm in arms)
    return entered


def active_date_campaigns(db: Session) -> Sequence[Campaign]:
    """Every workspace's active date-relative campaigns."""
    return repo.campaigns_in(db, statuses=[ACTIVE], kinds=["date_relative"])
