"""Campaign lifecycle: create and change drafts, launch, schedule, pause, resume, cancel, archive, estimate.

Statuses::

    draft ──launch──► scheduled ──(send_at)──► sending ──► testing ──(winner)──► sending ──► sent
      │                                          │  ▲
      │                                          ▼  │ resume
      └──launch (triggered, date_relative)──► active ◄──► paused        any ──cancel──► cancelled

A broadcast's audience is frozen when it starts sending: one pending recipient row per profile in its
segments (minus exclusions); the worker then assigns arms and writes outbox rows in chunks
(campaigns/sending.py). Consent, suppression, caps and quiet hours are checked again when each message is
claimed, so the estimate here is what we know before sending, not a promise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from rapport.audit import service as audit_service
from rapport.campaigns import assign, reach, schedule
from rapport.campaigns import repository as repo
from rapport.campaigns.schemas import AudienceEstimate, CampaignCreate, CampaignUpdate, TriggerIn, VariantIn
from rapport.collect import identity as ident
from rapport.consent import repository as consent_repo
from rapport.errors import Conflict, NotFound, ValidationFailed
from rapport.kit.clock import as_utc
from rapport.messaging import service as messaging_service
from rapport.models import Campaign, Workspace
from rapport.segments import repository as segments_repo
from rapport.segments.errors import SegmentError
from rapport.segments.parser import parse

DRAFT = "draft"
SCHEDULED = "scheduled"
SENDING = "sending"
TESTING = "testing"
SENT = "sent"
ACTIVE = "active"
PAUSED = "paused"
CANCELLED = "cancelled"
EDITABLE = {DRAFT, SCHEDULED}
#: Statuses whose conversions are still measured.
MEASURED = {SENDING, TESTING, SENT, ACTIVE, PAUSED}
RESERVED_KEYS = {assign.CONTROL, "waiting"}


def get_campaign(db: Session, *, workspace_id: int, campaign_id: int) -> Campaign:
    """Return one of the workspace's campaigns or raise NotFound."""
    campaign = repo.get_campaign(db, workspace_id=workspace_id, campaign_id=campaign_id)
    if campaign is None:
        raise NotFound("campaign not found")
    return campaign


def list_campaigns(
    db: Session, *, workspace_id: int, kind: str | None = None, include_archived: bool = False
) -> list[Campaign]:
    """Return the workspace's campaigns, newest first."""
    return repo.list_campaigns(db, workspace_id=workspace_id, kind=kind, include_archived=include_archived)


def read(db: Session, campaign: Campaign) -> dict[str, Any]:
    """Return a campaign with its variants, shaped for ``CampaignRead``."""
    data = {column.name: getattr(campaign, column.name) for column in Campaign.__table__.columns}
    data["variants"] = repo.variants_of(db, campaign_id=campaign.id)
    return data


# -- validation -----------------------------------------------------------------------------------------


def _check_segments(db: Session, *, workspace_id: int, ids: Sequence[int], field: str) -> None:
    for segment_id in ids:
        segment = segments_repo.get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
        if segment is None or segment.archived_at is not None:
            raise ValidationFailed(f"segment {segment_id} does not exist", details={"field": field})


def parse_where(where: str | None) -> Any:
    """Parse an event trigger's property conditions (segment-language syntax); None when empty."""
    if not where or not where.strip():
        return None
    try:
        node = parse(f'did "x" where ({where})')
    except SegmentError as exc:
        raise ValidationFailed(f"trigger where: {exc}", details={"field": "trigger.where"}) from exc
    return getattr(node, "where", None)


def _check_variants(db: Session, *, workspace_id: int, channel: str, variants: Sequence[VariantIn]) -> None:
    keys = [v.key for v in variants]
    if len(set(keys)) != len(keys):
        raise ValidationFailed("variant keys must be unique", details={"field": "variants"})
    if RESERVED_KEYS & set(keys):
        raise ValidationFailed("'control' and 'waiting' are reserved", details={"field": "variants"})
    if sum(v.weight for v in variants) <= 0:
        raise ValidationFailed("variant weights must add up to more than 0", details={"field": "variants"})
    templates = repo.templates_by_id(
        db, workspace_id=workspace_id, ids={v.template_id for v in variants if v.template_id is not None}
    )
    for variant in variants:
        content: dict[str, Any] = {}
        if variant.template_id is not None:
            template = templates.get(variant.template_id)
            if template is None:
                raise ValidationFailed(
                    f"variant {variant.key}: template {variant.template_id} does not exist",
                    details={"field": "variants"},
                )
            if template.channel != channel:
                raise ValidationFailed(
                    f"variant {variant.key}: template {template.name} is for {template.channel}, not {channel}",
                    details={"field": "variants"},
                )
            content.update(template.content or {})
        content.update(variant.content)
        missing = [key for key in messaging_service.REQUIRED[channel] if not content.get(key)]
        if channel == "email" and not (content.get("html") or content.get("text")):
            missing.append("html or text")
        if missing:
            raise ValidationFailed(
                f"variant {variant.key} needs {', '.join(missing)}",
                details={"field": "variants", "missing": missing},
            )


def _trigger_values(trigger: TriggerIn | None) -> dict[str, Any]:
    """The stored form of a trigger: what was given, and ``max_age_hours`` only for event triggers."""
    if trigger is None:
        return {}
    values = trigger.model_dump(exclude_none=True)
    if values.get("type") != "event":
        values.pop("max_age_hours", None)
    return values


def _check_shape(db: Session, *, workspace_id: int, values: dict[str, Any]) -> None:
    """Check what a campaign of its kind needs (after a create or an update)."""
    kind = values["kind"]
    trigger = values.get("trigger") or {}
    if kind == "broadcast":
        if not values.get("segment_ids"):
            raise ValidationFailed("a broadcast needs at least one segment", details={"field": "segment_ids"})
        if trigger:
            raise ValidationFailed("a broadcast has no trigger", details={"field": "trigger"})
    elif kind == "triggered":
        if trigger.get("type") not in {"event", "segment_entry", "segment_exit"}:
            raise ValidationFailed(
                "a triggered campaign needs an event, segment_entry or segment_exit trigger",
                details={"field": "trigger"},
            )
        if trigger["type"] == "event" and not trigger.get("event"):
            raise ValidationFailed("an event trigger names its event", details={"field": "trigger.event"})
        if trigger["type"] != "event":
            if trigger.get("segment_id") is None:
                raise ValidationFailed(
                    "a segment trigger names its segment", details={"field": "trigger.segment_id"}
                )
            _check_segments(
                db, workspace_id=workspace_id, ids=[trigger["segment_id"]], field="trigger.segment_id"
            )
        parse_where(trigger.get("where"))
    elif kind == "date_relative" and (trigger.get("type") != "date" or not trigger.get("trait")):
        raise ValidationFailed(
            "a date-relative campaign needs a date trigger with a trait", details={"field": "trigger"}
        )
    if values.get("reentry") == "every" and not values.get("reentry_days"):
        raise ValidationFailed("reentry 'every' needs reentry_days", details={"field": "reentry_days"})
    for field in ("local_time",):
        if values.get(field):
            try:
                schedule.parse_local_time(values[field])
            except ValueError as exc:
                raise ValidationFailed(str(exc), details={"field": field}) from exc
    if trigger.get("at"):
        try:
            schedule.parse_local_time(trigger["at"])
        except ValueError as exc:
            raise ValidationFailed(str(exc), details={"field": "trigger.at"}) from exc
    _check_segments(db, workspace_id=workspace_id, ids=values.get("segment_ids") or [], field="segment_ids")
    _check_segments(
        db,
        workspace_id=workspace_id,
        ids=values.get("exclude_segment_ids") or [],
        field="exclude_segment_ids",
    )
    topic = values.get("topic")
    if topic and consent_repo.get_topic(db, workspace_id=workspace_id, key=topic) is None:
        raise ValidationFailed(f"unknown topic {topic}", details={"field": "topic"})
    both = set(values.get("segment_ids") or []) & set(values.get("exclude_segment_ids") or [])
    if both:
        raise ValidationFailed(
            f"segment {min(both)} is both included and excluded: nobody in it would receive the campaign",
            details={"field": "exclude_segment_ids"},
        )
    _check_seeds(db, workspace_id=workspace_id, channel=values["channel"], seeds=values.get("seed_addresses"))


def _check_seeds(db: Session, *, workspace_id: int, channel: str, seeds: Sequence[str] | None) -> None:
    """Seed addresses (test sends) must be addresses of the campaign's channel: emails, or phone numbers
    (read with the workspace's default region); a typo found here is a test send that does not vanish."""
    if not seeds or channel not in {"email", "sms"}:
        return
    workspace = db.get(Workspace, workspace_id)
    region = workspace.default_region if workspace is not None else "GB"
    for seed in seeds:
        try:
            if channel == "email":
                ident.normalize_email(seed)
            else:
                ident.normalize_phone(seed, region)
        except ident.InvalidIdentifier as exc:
            raise ValidationFailed(
                f"seed address {seed!r}: {exc}", details={"field": "seed_addresses"}
            ) from None


def _check_send_at(db: Session, *, workspace_id: int, send_at: datetime, now: datetime) -> None:
    """Refuse a send time in the past (beyond a minute's grace): a broadcast must not go out at once by
    mistake. Sending now is asked for by giving no ``send_at``."""
    if not schedule.send_at_passed(send_at, now=now):
        return
    workspace = db.get(Workspace, workspace_id)
    tz = schedule.zone(workspace.timezone if workspace is not None else None)
    raise ValidationFailed(
        schedule.past_send_at_message(send_at, tz),
        details={"field": "send_at", "send_at": as_utc(send_at).isoformat(), "now": as_utc(now).isoformat()},
    )


def _variant_rows(variants: Sequence[VariantIn]) -> list[dict[str, Any]]:
    return [
        {
            "key": v.key,
            "name": v.name or v.key,
            "template_id": v.template_id,
            "content": v.content,
            "weight": v.weight,
        }
        for v in variants
    ]


# -- create / update ------------------------------------------------------------------------------------


def create_campaign(
    db: Session, *, workspace_id: int, data: CampaignCreate, actor: str, now: datetime
) -> Campaign:
    """Save a draft campaign after checking its segments, templates, trigger and variants."""
    if repo.name_taken(db, workspace_id=workspace_id, name=data.name):
        raise Conflict(f"a campaign named {data.name!r} exists already")
    values = data.model_dump(exclude={"variants", "experiment", "trigger"})
    values["experiment"] = data.experiment.model_dump() if data.experiment else {}
    values["trigger"] = _trigger_values(data.trigger)
    _check_shape(db, workspace_id=workspace_id, values=values)
    _check_variants(db, workspace_id=workspace_id, channel=data.channel, variants=data.variants)
    if data.send_at is not None:
        _check_send_at(db, workspace_id=workspace_id, send_at=data.send_at, now=now)
    campaign = Campaign(
        workspace_id=workspace_id, status=DRAFT, created_by=actor, created_at=now, updated_at=now, **values
    )
    db.add(campaign)
    db.flush()
    repo.replace_variants(db, campaign=campaign, variants=_variant_rows(data.variants))
    return _recorded(db, campaign, actor=actor, verb="create")


def update_campaign(
    db: Session, *, workspace_id: int, campaign_id: int, data: CampaignUpdate, actor: str, now: datetime
) -> Campaign:
    """Change a draft or scheduled campaign."""
    campaign = get_campaign(db, workspace_id=workspace_id, campaign_id=campaign_id)
    changes = data.model_dump(exclude_unset=True, exclude={"variants", "experiment", "trigger"})
    only_labels = (
        set(changes) <= {"name", "description"}
        and data.variants is None
        and "trigger" not in data.model_fields_set
    )
    if campaign.status not in EDITABLE and not only_labels:
        raise Conflict(f"a {campaign.status} campaign can only be renamed; pause or cancel it instead")
    if "name" in changes and repo.name_taken(
        db, workspace_id=workspace_id, name=changes["name"], exclude_id=campaign.id
    ):
        raise Conflict(f"a campaign named {changes['name']!r} exists already")
    if "experiment" in data.model_fields_set:
        changes["experiment"] = data.experiment.model_dump() if data.experiment else {}
    if "trigger" in data.model_fields_set:
        changes["trigger"] = _trigger_values(data.trigger)
    merged = {column.name: getattr(campaign, column.name) for column in Campaign.__table__.columns} | changes
    _check_shape(db, workspace_id=workspace_id, values=merged)
    if changes.get("send_at") is not None:
        _check_send_at(db, workspace_id=workspace_id, send_at=changes["send_at"], now=now)
    if data.variants is not None:
        _check_variants(db, workspace_id=workspace_id, channel=campaign.channel, variants=data.variants)
        repo.replace_variants(db, campaign=campaign, variants=_variant_rows(data.variants))
    for key, value in changes.items():
        setattr(campaign, key, value)
    campaign.updated_at = now
    return _recorded(
        db,
        campaign,
        actor=actor,
        verb="update",
        details={"fields": sorted(changes) + (["variants"] if data.variants is not None else [])},
    )


# -- lifecycle ------------------------------------------------------------------------------------------


def _recorded(
    db: Session, campaign: Campaign, *, actor: str, verb: str, details: dict[str, Any] | None = None
) -> Campaign:
    """Audit a change to a campaign (``campaign.<verb>``) in the caller's transaction and flush it."""
    audit_service.record(
        db,
        workspace_id=campaign.workspace_id,
        actor=actor,
        action=f"campaign.{verb}",
        target_type="campaign",
        target_id=campaign.id,
        details=details,
    )
    db.flush()
    return campaign


def _transition(
    db: Session, *, workspace_id: int, campaign_id: int, allowed: set[str], verb: str
) -> Campaign:
    campaign = repo.lock_campaign(db, workspace_id=workspace_id, campaign_id=campaign_id)
    if campaign is None:
        raise NotFound("campaign not found")
    if campaign.status not in allowed:
        raise Conflict(f"cannot {verb} a {campaign.status} campaign")
    return campaign


def do_launch(db: Session, *, workspace_id: int, campaign_id: int, actor: str, now: datetime) -> Campaign:
    """Start a campaign: a broadcast is scheduled (``send_at`` in the future) or starts sending now (its
    audience frozen in this transaction); a triggered or date-relative campaign becomes active. A broadcast
    whose ``send_at`` has passed meanwhile is refused rather than sent at once."""
    campaign = _transition(
        db, workspace_id=workspace_id, campaign_id=campaign_id, allowed={DRAFT}, verb="launch"
    )
    if campaign.kind == "broadcast":
        if campaign.send_at is not None:
            _check_send_at(db, workspace_id=workspace_id, send_at=campaign.send_at, now=now)
        building = segments_building(db, campaign=campaign)
        if building:
            raise Conflict(f"segment {building} is still being built; launch again in a moment")
        if campaign.send_at is not None and campaign.send_at > now:
            campaign.status = SCHEDULED
        else:
            start_sending(db, campaign=campaign, now=now)
    else:
        campaign.status = ACTIVE
        campaign.started_at = now
    campaign.updated_at = now
    return _recorded(
        db,
        campaign,
        actor=actor,
        verb="launch",
        details={"status": campaign.status, "audience": campaign.audience_size},
    )


def segments_building(db: Session, *, campaign: Campaign) -> str | None:
    """The name of a segment of the campaign whose membership is still being built, or None."""
    for segment_id in [*campaign.segment_ids, *campaign.exclude_segment_ids]:
        segment = segments_repo.get_segment(db, workspace_id=campaign.workspace_id, segment_id=segment_id)
        if segment is not None and segment.status == "building":
            return segment.name
    return None


def start_sending(db: Session, *, campaign: Campaign, now: datetime) -> None:
    """Freeze a broadcast's audience now and hand it to the worker (campaigns/sending.py)."""
    campaign.audience_size = repo.freeze_audience(db, campaign=campaign, now=now)
    campaign.status = SENDING
    campaign.started_at = now
    if campaign.send_at is None:
        campaign.send_at = now
    campaign.updated_at = now


def do_pause(
    db: Session, *, workspace_id: int, campaign_id: int, actor: str, now: datetime, reason: str = ""
) -> Campaign:
    """Pause: queued messages wait (the Deliverer holds them), triggers stop admitting new entries."""
    campaign = _transition(
        db,
        workspace_id=workspace_id,
        campaign_id=campaign_id,
        allowed={SCHEDULED, SENDING, TESTING, ACTIVE},
        verb="pause",
    )
    campaign.status_reason = reason or f"paused by {actor}"
    campaign.status = PAUSED
    campaign.updated_at = now
    return _recorded(db, campaign, actor=actor, verb="pause")


def do_resume(db: Session, *, workspace_id: int, campaign_id: int, actor: str, now: datetime) -> Campaign:
    """Resume a paused campaign where it was."""
    campaign = _transition(
        db, workspace_id=workspace_id, campaign_id=campaign_id, allowed={PAUSED}, verb="resume"
    )
    campaign.status = _resumed_status(db, campaign)
    campaign.status_reason = ""
    campaign.updated_at = now
    return _recorded(db, campaign, actor=actor, verb="resume")


def _resumed_status(db: Session, campaign: Campaign) -> str:
    """Where a paused campaign picks up: triggers become active again; a broadcast goes on sending, or
    testing while its waiting recipients still wait for a winner."""
    if campaign.kind != "broadcast":
        return ACTIVE
    if campaign.started_at is None:
        return SCHEDULED
    states = repo.count_states(db, campaign_id=campaign.id)
    if not states.get(repo.PENDING) and states.get(repo.WAITING) and campaign.winner_variant is None:
        return TESTING
    return SENDING


def do_cancel(db: Session, *, workspace_id: int, campaign_id: int, actor: str, now: datetime) -> Campaign:
    """Cancel: nothing more is sent; queued messages are skipped when claimed; results stay readable."""
    campaign = _transition(
        db,
        workspace_id=workspace_id,
        campaign_id=campaign_id,
        allowed={DRAFT, SCHEDULED, SENDING, TESTING, ACTIVE, PAUSED},
        verb="cancel",
    )
    campaign.status = CANCELLED
    campaign.status_reason = f"cancelled by {actor}"
    campaign.finished_at = now
    campaign.updated_at = now
    return _recorded(db, campaign, actor=actor, verb="cancel")


def do_archive(db: Session, *, workspace_id: int, campaign_id: int, actor: str, now: datetime) -> Campaign:
    """Hide a finished, cancelled or draft campaign from the list (its results stay)."""
    campaign = _transition(
        db,
        workspace_id=workspace_id,
        campaign_id=campaign_id,
        allowed={DRAFT, SENT, CANCELLED},
        verb="archive",
    )
    campaign.archived_at = now
    campaign.updated_at = now
    return _recorded(db, campaign, actor=actor, verb="archive")


def duplicate_campaign(
    db: Session, *, workspace_id: int, campaign_id: int, name: str | None, actor: str, now: datetime
) -> Campaign:
    """Copy a campaign (settings and variants) into a new draft; a send time already past is dropped."""
    source = get_campaign(db, workspace_id=workspace_id, campaign_id=campaign_id)
    new_name = name or f"{source.name} (copy)"
    if repo.name_taken(db, workspace_id=workspace_id, name=new_name):
        raise Conflict(f"a campaign named {new_name!r} exists already")
    skip = {"id", "name", "status", "status_reason", "winner_variant", "winner_decided_at", "audience_size",
            "started_at", "finished_at", "archived_at", "created_at", "updated_at", "created_by"}  # fmt: skip
    values = {c.name: getattr(source, c.name) for c in Campaign.__table__.columns if c.name not in skip}
    if values["send_at"] is not None and as_utc(values["send_at"]) <= now:
        values["send_at"] = None  # a copy of a sent broadcast sends when launched, not "at a past time"
    copy = Campaign(**values, name=new_name, status=DRAFT, created_by=actor, created_at=now, updated_at=now)
    db.add(copy)
    db.flush()
    repo.replace_variants(
        db,
        campaign=copy,
        variants=[
            {
                "key": v.key,
                "name": v.name,
                "template_id": v.template_id,
                "content": v.content,
                "weight": v.weight,
            }
            for v in repo.variants_of(db, campaign_id=source.id)
        ],
    )
    return copy


# -- audience -------------------------------------------------------------------------------------------


def estimate_audience(
    db: Session, *, workspace: Workspace, campaign: Campaign, now: datetime, sample: int = 20
) -> AudienceEstimate:
    """Who a broadcast would reach now: its size, the control group, and how many have no address, no
    consent, a suppressed address on its channel, or a frequency cap already reached (the Deliverer checks
    again at claim time)."""
    ids = (
        repo.audience_ids(
            db,
            workspace_id=workspace.id,
            segment_ids=campaign.segment_ids,
            exclude_ids=campaign.exclude_segment_ids,
        )
        if campaign.kind == "broadcast"
        else []
    )
    seed = seed_of(campaign)
    control = sum(
        1
        for pid in ids
        if campaign.control_percent > 0 and assign.unit(seed, pid, "control") * 100 < campaign.control_percent
    )
    counts = reach.classify(db, workspace=workspace, campaign=campaign, profile_ids=ids, now=now)
    return AudienceEstimate(
        total=len(ids),
        control=control,
        reachable=counts["reachable"],
        no_address=counts["no_address"],
        no_consent=counts["no_consent"],
        suppressed=counts["suppressed"],
        capped=counts["capped"],
        sample=ids[:sample],
    )


def top_campaigns(
    db: Session, *, workspace_id: int, since: datetime, until: datetime, limit: int = 5
) -> list[tuple[int, str, int, float]]:
    """The campaigns whose recipients (control excluded) brought the most revenue in [since, until):
    (id, name, conversions, revenue)."""
    rows = repo.top_campaigns(db, workspace_id=workspace_id, since=since, until=until, limit=limit)
    return [(int(cid), str(name), int(n), float(revenue)) for cid, name, n, revenue in rows]


def conversions_per_day(
    db: Session, *, workspace_id: int, since: datetime, until: datetime, revenue: bool = False
) -> dict[date, float]:
    """Campaign conversions (or their revenue) per UTC day in [since, until), control groups excluded."""
    found: dict[date, float] = {}
    for at, amount in repo.conversions_between(db, workspace_id=workspace_id, since=since, until=until):
        day = as_utc(at).date()
        found[day] = found.get(day, 0.0) + (float(amount or 0) if revenue else 1.0)
    return found


def seed_of(campaign: Campaign) -> str:
    """The seed of a campaign's stable arm assignment."""
    return f"campaign:{campaign.id}"


def segment_ids_used(db: Session, *, workspace_id: int) -> set[int]:
    """Segments referenced by live campaigns (so archiving one can warn)."""
    ids: set[int] = set()
    for campaign in repo.list_campaigns(db, workspace_id=workspace_id):
        if campaign.status in {CANCELLED, SENT}:
            continue
        ids.update(campaign.segment_ids or [])
        ids.update(campaign.exclude_segment_ids or [])
        if (campaign.trigger or {}).get("segment_id") is not None:
            ids.add(int(campaign.trigger["segment_id"]))
    return ids


@dataclass(frozen=True, slots=True)
class Action:
    """A lifecycle verb: the service function, what it does (API and CLI help), and its past tense."""

    do: Callable[..., Campaign]
    summary: str
    done: str


#: The lifecycle verbs every edge offers (API routes, CLI commands, UI buttons) — one list for all three.
ACTIONS: dict[str, Action] = {
    "launch": Action(
        do_launch,
        "Launch: a broadcast is scheduled or starts sending (audience frozen now); triggers go live.",
        "Launched",
    ),
    "pause": Action(do_pause, "Pause: queued messages wait; triggers admit nobody new.", "Paused"),
    "resume": Action(do_resume, "Resume a paused campaign where it was.", "Resumed"),
    "cancel": Action(do_cancel, "Cancel: nothing more is sent; queued messages are skipped.", "Cancelled"),
    "archive": Action(do_archive, "Archive a draft, sent or cancelled campaign.", "Archived"),
}
