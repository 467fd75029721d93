"""Turn campaign entries into outbox rows: assign the arm, build the content, pick the time, queue.

Two paths share this module:

- a broadcast's frozen audience (pending recipient rows) is worked through in chunks by the worker
  (:func:`send_chunk`), each chunk one short transaction; re-running a chunk changes nothing (the outbox
  dedupe key ``campaign:<id>:<profile>:<entry>`` and the held-out event id are unique);
- a triggered or date-relative campaign admits one profile at a time (:func:`enter`), in the
  transaction of the event or membership change that fired it.

Control members get no message and a ``campaign_held_out`` event on their timeline, so measurement (and
segments) can find them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.campaigns import assign, schedule
from rapport.campaigns import repository as repo
from rapport.campaigns.service import ACTIVE, SENDING, SENT, TESTING, seed_of
from rapport.catalog import service as catalog_service
from rapport.content import repository as content_repository
from rapport.content import service as content_service
from rapport.content.rendering import MAX_SNIPPETS
from rapport.messaging import service as messaging_service
from rapport.messaging.service import OutboxRow
from rapport.models import Campaign, CampaignVariant, MessageTemplate, Profile, Workspace

CHUNK = 2000
SNIPPET_TAG = re.compile(r"\{%-?\s*(render|include)\b")
SNIPPET_NAME = re.compile(r"\{%-?\s*(?:render|include)\s+[\"']([^\"']+)[\"']")
#: Outbox content flag: the saved template behind the row loops over ``recommendations``.
USES_RECOMMENDATIONS = "uses_recommendations"
RECOMMENDATIONS = 3
HELD_OUT_EVENT = "campaign_held_out"


@dataclass(frozen=True)
class Prepared:
    """What every entry of a campaign shares: the arm plan and each variant's outbox content."""

    campaign: Campaign
    plan: assign.ArmPlan
    contents: Mapping[str, dict[str, Any]]
    #: The workspace's timezone, read for a campaign sent at a local time (the recipients' fallback).
    workspace_timezone: str


def variant_content(
    campaign: Campaign, variant: CampaignVariant, template: MessageTemplate | None
) -> dict[str, Any]:
    """The outbox content of one arm: the template's Liquid parts, the variant's overrides, the campaign."""
    content: dict[str, Any] = {}
    if template is not None and renders_at_send(template):
        # rule blocks and snippets: content/ renders the saved template for each recipient at send time
        content.update(content_service.message_content(template))
    elif template is not None:
        content.update(template.content or {})
        content["template"] = {"id": template.id, "name": template.name, "version": template.version}
    content.update(variant.content or {})
    content["campaign"] = {
        "id": campaign.id,
        "name": campaign.name,
        "channel": campaign.channel,
        "variant": variant.key,
    }
    return content


def renders_at_send(template: MessageTemplate) -> bool:
    """Whether a template needs content/'s renderer (rule blocks, snippets) rather than plain Liquid."""
    if template.blocks:
        return True
    return any(SNIPPET_TAG.search(str(part or "")) for part in (template.content or {}).values())


def wants_recommendations(content: Mapping[str, Any]) -> bool:
    """Whether a message's Liquid uses ``recommendations`` (they are then computed when it is queued)."""
    if content.get(USES_RECOMMENDATIONS):
        return True
    return any("recommendations" in str(value) for value in content.values() if isinstance(value, str))


def template_wants_recommendations(db: Session, template: MessageTemplate) -> bool:
    """Whether a saved template rendered at send time uses ``recommendations`` in its parts, its rule blocks
    or the snippets it renders (followed through snippets rendering snippets)."""
    texts = [str(part or "") for part in (template.content or {}).values()]
    for block in template.blocks or []:
        if isinstance(block, Mapping):
            texts.append(str(block.get("default") or ""))
            texts.extend(
                str(v.get("source") or "") for v in block.get("variants") or [] if isinstance(v, Mapping)
            )
    sources: dict[str, str] | None = None
    seen: set[str] = set()
    while texts:
        text = texts.pop()
        if "recommendations" in text:
            return True
        names = {m.group(1) for m in SNIPPET_NAME.finditer(text)} - seen
        if names:
            if sources is None:
                sources = content_repository.snippet_sources(
                    db, workspace_id=template.workspace_id, limit=MAX_SNIPPETS
                )
            seen |= names
            texts.extend(sources[name] for name in names if name in sources)
    return False


def prepare(db: Session, campaign: Campaign, *, triggered: bool = False) -> Prepared:
    """Load a campaign's arms and contents once for a chunk or an entry."""
    variants = repo.variants_of(db, campaign_id=campaign.id)
    templates = repo.templates_by_id(
        db,
        workspace_id=campaign.workspace_id,
        ids={v.template_id for v in variants if v.template_id is not None},
    )
    experiment = campaign.experiment or {}
    # a triggered campaign never makes anyone wait: its test phase splits everyone until a winner is known
    test_percent = 0.0 if triggered or len(variants) < 2 else float(experiment.get("test_percent") or 0)
    plan = assign.ArmPlan(
        control_percent=float(campaign.control_percent or 0),
        variants=tuple((v.key, v.weight) for v in variants),
        test_percent=test_percent,
        winner=campaign.winner_variant,
    )
    if triggered and campaign.winner_variant is not None:
        plan = assign.ArmPlan(plan.control_percent, ((campaign.winner_variant, 1),))
    contents = {
        v.key: variant_content(campaign, v, templates.get(v.template_id) if v.template_id else None)
        for v in variants
    }
    for v in variants:
        template = templates.get(v.template_id) if v.template_id else None
        if (
            template is not None
            and renders_at_send(template)
            and template_wants_recommendations(db, template)
        ):
            contents[v.key][USES_RECOMMENDATIONS] = True  # the recipient's picks ride in the outbox row
    timezone = "UTC"
    if campaign.local_time:  # only a send at a local time needs the workspace's zone (the fallback)
        workspace = db.get(Workspace, campaign.workspace_id)
        timezone = workspace.timezone if workspace else "UTC"
    return Prepared(campaign, plan, contents, timezone)


def _run_at(prepared: Prepared, *, base: datetime, zone_name: str | None, index: int) -> datetime:
    campaign = prepared.campaign
    when = base
    if campaign.local_time:
        tz = schedule.zone(zone_name, prepared.workspace_timezone)
        when = schedule.next_local(base, schedule.parse_local_time(campaign.local_time), tz)
    return schedule.throttled(when, index, campaign.throttle_per_hour)


def _held_out_event(campaign: Campaign, profile_id: int, entry_key: str, now: datetime) -> dict[str, Any]:
    return {
        "workspace_id": campaign.workspace_id,
        "message_id": f"ho:{campaign.id}:{profile_id}:{entry_key}",
        "event": HELD_OUT_EVENT,
        "profile_id": profile_id,
        "timestamp": now,
        "received_at": now,
        "properties": {"campaign_id": campaign.id, "campaign": campaign.name, "variant": assign.CONTROL},
    }


def dedupe_key(campaign: Campaign, profile_id: int, entry_key: str) -> str:
    """The outbox key that makes one message per campaign entry (R6)."""
    return f"campaign:{campaign.id}:{profile_id}:{entry_key}"


def _outbox_row(
    prepared: Prepared,
    *,
    arm: str,
    profile_id: int,
    entry_key: str,
    run_at: datetime,
    extra: Mapping[str, Any] | None = None,
) -> OutboxRow:
    campaign = prepared.campaign
    content = prepared.contents[arm]
    if extra:
        content = {**content, **extra}
    return OutboxRow(
        profile_id=profile_id,
        channel=campaign.channel,
        content=content,
        dedupe_key=dedupe_key(campaign, profile_id, entry_key),
        kind=campaign.message_kind,
        topic=campaign.topic,
        campaign_id=campaign.id,
        variant=arm,
        priority=campaign.priority,
        run_at=run_at,
    )


def with_recommendations(
    db: Session, *, campaign: Campaign, rows: list[OutboxRow], now: datetime
) -> list[OutboxRow]:
    """Give the rows whose Liquid uses ``recommendations`` each recipient's products (catalog/, one bulk
    call for the batch: bought together, popular in their favourite category, never what they bought)."""
    wanting = [row for row in rows if wants_recommendations(row.content)]
    if not wanting:
        return rows
    found = catalog_service.recommendations_for(
        db,
        workspace_id=campaign.workspace_id,
        profile_ids=[row.profile_id for row in wanting],
        limit=RECOMMENDATIONS,
        now=now,
    )
    return [
        replace(row, content={**row.content, "recommendations": found.get(row.profile_id, [])})
        if wants_recommendations(row.content)
        else row
        for row in rows
    ]


def _zones(db: Session, profile_ids: Sequence[int]) -> dict[int, str | None]:
    rows = db.execute(select(Profile.id, Profile.timezone).where(Profile.id.in_(list(profile_ids)))).all()
    return {int(pid): tz for pid, tz in rows}


def send_chunk(db: Session, *, campaign: Campaign, now: datetime, limit: int = CHUNK) -> int:
    """Assign and queue up to ``limit`` pending recipients of a sending broadcast; finish it when none
    are left. Returns how many recipients were handled."""
    pending = repo.claim_pending(db, campaign_id=campaign.id, limit=limit)
    if not pending:
        finish_if_done(db, campaign=campaign, now=now)
        return 0
    prepared = prepare(db, campaign)
    zones = _zones(db, [pid for _, pid in pending]) if campaign.local_time else {}
    index = repo.count_states(db, campaign_id=campaign.id).get(repo.QUEUED, 0)
    base = max(now, campaign.send_at or now)
    seed = seed_of(campaign)
    rows: list[OutboxRow] = []
    states: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for rid, pid in pending:
        arm = assign.arm_for(prepared.plan, seed=seed, profile_id=pid)
        if arm == assign.CONTROL:
            states.append(
                {"rid": rid, "variant": arm, "state": repo.HELD_OUT, "reason": "", "message_pk": None}
            )
            held.append(_held_out_event(campaign, pid, "", now))
        elif arm == assign.WAITING:
            states.append(
                {"rid": rid, "variant": "", "state": repo.WAITING, "reason": "", "message_pk": None}
            )
        else:
            run_at = _run_at(prepared, base=base, zone_name=zones.get(pid), index=index)
            index += 1
            rows.append(_outbox_row(prepared, arm=arm, profile_id=pid, entry_key="", run_at=run_at))
            states.append(
                {"rid": rid, "variant": arm, "state": repo.QUEUED, "reason": "", "message_pk": None}
            )
    rows = with_recommendations(db, campaign=campaign, rows=rows, now=now)
    messaging_service.enqueue_many(db, workspace_id=campaign.workspace_id, rows=rows, now=now)
    repo.set_states(db, states)
    repo.insert_events(db, held)
    if len(pending) < limit:
        finish_if_done(db, campaign=campaign, now=now)
    return len(pending)


def finish_if_done(db: Session, *, campaign: Campaign, now: datetime) -> None:
    """Move a sending broadcast on when nobody is pending: to testing (recipients wait for the winner), or
    to sent once the outbox holds none of its messages any more."""
    if campaign.status != SENDING:
        return
    states = repo.count_states(db, campaign_id=campaign.id)
    if states.get(repo.PENDING):
        return
    if states.get(repo.WAITING) and campaign.winner_variant is None:
        campaign.status = TESTING
    elif repo.outbox_open(db, workspace_id=campaign.workspace_id, campaign_id=campaign.id):
        return  # still sending: messages wait in the outbox (throttled, local time, quiet hours)
    else:
        campaign.status = SENT
        campaign.finished_at = now
    campaign.updated_at = now


@dataclass(frozen=True, slots=True)
class Entry:
    """One profile entering a triggered or date-relative campaign."""

    profile_id: int
    entry_key: str
    at: datetime
    extra: Mapping[str, Any] | None = None
    run_at: datetime | None = None


def _admissible(db: Session, campaign: Campaign, entries: Sequence[Entry]) -> list[bool]:
    """Apply the re-entry rule to a batch: against earlier entries and within the batch itself."""
    # a date-relative "once" means once per occurrence: the entry key (the date) already says so
    per_occurrence = campaign.kind == "date_relative" and campaign.reentry == "once"
    if campaign.reentry == "always" or per_occurrence:
        return [True] * len(entries)
    last = repo.last_entries(db, campaign_id=campaign.id, profile_ids={e.profile_id for e in entries})
    window = timedelta(days=campaign.reentry_days or 0)
    allowed: list[bool] = []
    for entry in entries:
        before = last.get(entry.profile_id)
        ok = before is None or (campaign.reentry == "every" and before <= entry.at - window)
        allowed.append(ok)
        if ok:
            last[entry.profile_id] = entry.at
    return allowed


def enter_many(
    db: Session,
    *,
    campaign: Campaign,
    entries: Sequence[Entry],
    now: datetime,
    prepared: Prepared | None = None,
) -> list[str | None]:
    """Admit profiles into an active triggered/date-relative campaign in a few statements: re-entry
    rules, stable arm, recipient rows, held-out events for control, outbox rows for the rest. Returns each
    entry's arm, or None when it was refused or existed already (the same event twice enters once).

    The entries' profiles come from the campaign's workspace, read in this transaction by the caller (the
    triggers: linked events, segment changes, date candidates), so the outbox does not check them again."""
    if campaign.status != ACTIVE or not entries:
        return [None] * len(entries)
    allowed = _admissible(db, campaign, entries)
    prepared = prepared or prepare(db, campaign, triggered=True)
    seed = seed_of(campaign)
    arms: list[str | None] = [None] * len(entries)
    rows: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        if not allowed[index]:
            continue
        arm = assign.arm_for(prepared.plan, seed=seed, profile_id=entry.profile_id)
        arms[index] = arm
        rows.append(
            {
                "workspace_id": campaign.workspace_id,
                "campaign_id": campaign.id,
                "profile_id": entry.profile_id,
                "entry_key": entry.entry_key[:100],
                "variant": arm,
                "state": repo.HELD_OUT if arm == assign.CONTROL else repo.QUEUED,
                "reason": "",
                "entered_at": entry.at,
            }
        )
    inserted = repo.insert_recipients(db, rows)
    zones = (
        _zones(db, [e.profile_id for e in entries])
        if campaign.local_time and any(e.run_at is None for e in entries)
        else {}
    )
    held: list[dict[str, Any]] = []
    outbox: list[OutboxRow] = []
    for index, entry in enumerate(entries):
        chosen = arms[index]
        key = entry.entry_key[:100]
        if chosen is None:
            continue
        if (entry.profile_id, key) not in inserted:
            arms[index] = None
            continue
        if chosen == assign.CONTROL:
            held.append(_held_out_event(campaign, entry.profile_id, key, now))
            continue
        due = entry.run_at or (max(entry.at, now) + timedelta(seconds=campaign.delay_seconds or 0))
        if campaign.local_time and entry.run_at is None:
            due = _run_at(prepared, base=due, zone_name=zones.get(entry.profile_id), index=0)
        outbox.append(
            _outbox_row(
                prepared,
                arm=chosen,
                profile_id=entry.profile_id,
                entry_key=key,
                run_at=due,
                extra=entry.extra,
            )
        )
    repo.insert_events(db, held)
    outbox = with_recommendations(db, campaign=campaign, rows=outbox, now=now)
    messaging_service.enqueue_many(
        db, workspace_id=campaign.workspace_id, rows=outbox, now=now, profiles_known=True
    )
    return arms
