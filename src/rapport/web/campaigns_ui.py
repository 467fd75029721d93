"""Campaigns pages: the list, a step-by-step form for a new campaign (basics → audience or trigger →
content and arms → schedule and goal), the campaign page (review with the audience estimate before
launch; status, actions and results per arm with lift against control after), and the test send.

The form works without JavaScript (every section is shown); ``static/js/campaigns.js`` hides the sections
that do not apply to the chosen kind and draws the results chart from the JSON the page embeds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from rapport.api.deps import DbSession, ReadDbSession
from rapport.campaigns import measure, testsend
from rapport.campaigns import repository as campaigns_repo
from rapport.campaigns import service as campaigns_service
from rapport.campaigns.schemas import CampaignCreate
from rapport.consent import service as consent_service
from rapport.content import service as content_service
from rapport.errors import RapportError
from rapport.kit.pagination import Page
from rapport.models import Campaign, Workspace
from rapport.runtime import Runtime
from rapport.segments import service as segments_service
from rapport.web.rendering import Flash, redirect, render
from rapport.web.session import UiEditorPost, UiPage, UiRoute, UiUser

router = APIRouter(prefix="/campaigns", route_class=UiRoute, include_in_schema=False)

VARIANT_KEYS = ("A", "B", "C", "D")
CHANNELS = ("email", "sms", "push", "inapp", "webhook")
LIVE = {"sending", "testing", "active", "scheduled"}
KIND_LABELS = {"broadcast": "Broadcast", "triggered": "Triggered", "date_relative": "Date-relative"}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _workspace(db: Session, ui: UiUser) -> Workspace:
    workspace = db.get(Workspace, ui.workspace_id)
    assert workspace is not None
    return workspace


class FormEcho(dict[str, Any]):
    """What the form showed: a missing field reads as empty in the template."""

    def __missing__(self, key: str) -> Any:
        return None


def _choices(db: Session, ui: UiUser) -> dict[str, Any]:
    """What the form offers: segments, templates, topics."""
    return {
        "segments": segments_service.list_segments(db, workspace_id=ui.workspace_id),
        "templates": content_service.list_templates(
            db, workspace_id=ui.workspace_id, page=Page(limit=500, offset=0)
        ),
        "topics": consent_service.list_topics(db, workspace_id=ui.workspace_id),
        "channels": CHANNELS,
        "variant_keys": VARIANT_KEYS,
        "kinds": KIND_LABELS,
    }


@router.get("")
def campaigns_page(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """List the campaigns, newest first."""
    campaigns = campaigns_service.list_campaigns(db, workspace_id=ui.workspace_id)
    return render(
        request, "campaigns/list.html", {"title": "Campaigns", "campaigns": campaigns, "kinds": KIND_LABELS}
    )


@router.get("/new")
def new_campaign_page(request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """The form for a new campaign."""
    return render(
        request,
        "campaigns/new.html",
        {
            "title": "New campaign",
            "form": FormEcho(kind="broadcast", channel="email"),
            "error": None,
            **_choices(db, ui),
        },
    )


def _number(form: FormData, name: str, default: float | None = None) -> float | None:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name.replace('_', ' ')} must be a number") from exc


def _integer(form: FormData, name: str, default: int | None = None) -> int | None:
    value = _number(form, name, None)
    return default if value is None else int(value)


def body_from_form(form: FormData, *, timezone: str) -> dict[str, Any]:
    """Turn the new-campaign form into the API's create body (a ValueError names what is wrong)."""
    kind = str(form.get("kind") or "broadcast")
    body: dict[str, Any] = {
        "name": str(form.get("name") or "").strip(),
        "description": str(form.get("description") or ""),
        "kind": kind,
        "channel": str(form.get("channel") or "email"),
        "topic": str(form.get("topic") or ""),
        "control_percent": _number(form, "control_percent", 0.0),
        "goal_event": str(form.get("goal_event") or "order_completed").strip(),
        "goal_days": _integer(form, "goal_days", 7),
        "goal_revenue_property": str(form.get("goal_revenue_property") or "total").strip(),
        "cost_per_message": _number(form, "cost_per_message"),
        "seed_addresses": [a.strip() for a in str(form.get("seed_addresses") or "").split(",") if a.strip()],
        "reentry": str(form.get("reentry") or "once"),
        "reentry_days": _integer(form, "reentry_days"),
    }
    variants = []
    for key in VARIANT_KEYS:
        template = str(form.get(f"variant_{key}_template") or "")
        if not template:
            continue
        variants.append(
            {
                "key": key,
                "name": str(form.get(f"variant_{key}_name") or "").strip() or f"Variant {key}",
                "template_id": int(template),
                "weight": _integer(form, f"variant_{key}_weight", 1),
            }
        )
    if not variants:
        raise ValueError("choose a template for variant A")
    body["variants"] = variants
    test_percent = _number(form, "test_percent", 0.0) or 0.0
    if test_percent > 0:
        body["experiment"] = {
            "test_percent": test_percent,
            "metric": str(form.get("metric") or "conversion"),
            "method": str(form.get("method") or "significance"),
            "test_hours": _number(form, "test_hours", 24.0),
            "send_winner": form.get("send_winner") is not None,
        }
    if kind == "broadcast":
        body["segment_ids"] = [int(str(v)) for v in form.getlist("segment_ids")]
        body["exclude_segment_ids"] = [int(str(v)) for v in form.getlist("exclude_segment_ids")]
        when = str(form.get("when") or "now")
        if when == "at":
            raw = str(form.get("send_at") or "")
            try:
                local = datetime.fromisoformat(raw)
            except ValueError as exc:
                raise ValueError("choose the date and time to send at") from exc
            body["send_at"] = local.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC).isoformat()
        elif when == "local":
            body["local_time"] = str(form.get("local_time") or "09:00")
        throttle = _integer(form, "throttle_per_hour")
        if throttle:
            body["throttle_per_hour"] = throttle
    elif kind == "triggered":
        trigger_type = str(form.get("trigger_type") or "event")
        trigger: dict[str, Any] = {"type": trigger_type}
        if trigger_type == "event":
            trigger["event"] = str(form.get("trigger_event") or "").strip()
            if str(form.get("trigger_where") or "").strip():
                trigger["where"] = str(form.get("trigger_where")).strip()
            max_age = _number(form, "trigger_max_age_hours")
            if max_age is not None:
                trigger["max_age_hours"] = max_age
        else:
            trigger["segment_id"] = _integer(form, "trigger_segment_id")
        body["trigger"] = trigger
        body["delay_seconds"] = int((_number(form, "delay_minutes", 0.0) or 0.0) * 60)
    else:
        body["trigger"] = {
            "type": "date",
            "trait": str(form.get("date_trait") or "").strip(),
            "offset_days": _integer(form, "date_offset_days", 0),
            "at": str(form.get("date_at") or "09:00"),
            "anniversary": form.get("date_anniversary") is not None,
        }
    return body


@router.post("/new")
async def create_campaign(request: Request, ui: UiEditorPost, db: DbSession) -> Response:
    """Save the new campaign as a draft and open its review page."""
    form = await request.form()
    workspace = _workspace(db, ui)
    error: str | None = None
    try:
        data = CampaignCreate.model_validate(body_from_form(form, timezone=workspace.timezone))
        campaign = campaigns_service.create_campaign(
            db,
            workspace_id=ui.workspace_id,
            data=data,
            actor=ui.principal.actor,
            now=_runtime(request).clock.now(),
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        error = _validation_text(exc)
    except RapportError as exc:
        error = exc.message
    if error is not None:
        db.rollback()
        context = {"title": "New campaign", "form": _form_echo(form), "error": error, **_choices(db, ui)}
        return render(request, "campaigns/new.html", context, status_code=400)
    db.commit()
    return redirect(
        request, f"/campaigns/{campaign.id}", flash=Flash("success", f"Draft {campaign.name!r} saved.")
    )


def _validation_text(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc)


def _form_echo(form: FormData) -> FormEcho:
    echo = FormEcho({key: form.get(key) for key in form})
    echo["segment_ids"] = {int(str(v)) for v in form.getlist("segment_ids")}
    echo["exclude_segment_ids"] = {int(str(v)) for v in form.getlist("exclude_segment_ids")}
    return echo


def _results_context(db: Session, campaign: Campaign, *, oob: bool) -> dict[str, Any]:
    """What the live results panel needs (it is polled every few seconds: no estimate, no set-up)."""
    stats = measure.campaign_stats(db, campaign=campaign) if campaign.status != "draft" else None
    chart = []
    if stats is not None:
        for arm in [*stats.arms, *([stats.control] if stats.control else [])]:
            chart.append(
                {
                    "label": arm.name,
                    "rate": round(arm.conversion_rate * 100, 3),
                    "low": round(arm.conversion_interval.low * 100, 3),
                    "high": round(arm.conversion_interval.high * 100, 3),
                }
            )
    return {"campaign": campaign, "stats": stats, "chart": chart, "live": campaign.status in LIVE, "oob": oob}


def _detail_context(request: Request, ui: UiUser, db: Session, campaign: Campaign) -> dict[str, Any]:
    variants = campaigns_repo.variants_of(db, campaign_id=campaign.id)
    templates = campaigns_repo.templates_by_id(
        db, workspace_id=ui.workspace_id, ids={v.template_id for v in variants if v.template_id}
    )
    segments = {
        s.id: s.name
        for s in segments_service.list_segments(db, workspace_id=ui.workspace_id, include_archived=True)
    }
    estimate = None
    if campaign.kind == "broadcast" and campaign.status in {"draft", "scheduled"}:
        estimate = campaigns_service.estimate_audience(
            db, workspace=_workspace(db, ui), campaign=campaign, now=_runtime(request).clock.now()
        )
    return {
        "title": campaign.name,
        "variants": variants,
        "templates": templates,
        "segment_names": segments,
        "estimate": estimate,
        "kinds": KIND_LABELS,
        **_results_context(db, campaign, oob=False),
    }


@router.get("/{campaign_id}")
def campaign_page(campaign_id: int, request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """Review a draft (audience estimate, arms, schedule) or follow a running campaign's results."""
    campaign = campaigns_service.get_campaign(db, workspace_id=ui.workspace_id, campaign_id=campaign_id)
    return render(request, "campaigns/detail.html", _detail_context(request, ui, db, campaign))


@router.get("/{campaign_id}/results")
def campaign_results(campaign_id: int, request: Request, ui: UiPage, db: ReadDbSession) -> Response:
    """The status and results panel alone (htmx refreshes it while the campaign is live)."""
    campaign = campaigns_service.get_campaign(db, workspace_id=ui.workspace_id, campaign_id=campaign_id)
    # the status line and the actions follow along as out-of-band swaps
    return render(request, "campaigns/_results.html", _results_context(db, campaign, oob=True))


@router.post("/{campaign_id}/action")
async def campaign_action(campaign_id: int, request: Request, ui: UiEditorPost, db: DbSession) -> Response:
    """Launch, pause, resume, cancel, archive or duplicate the campaign."""
    form = await request.form()
    verb = str(form.get("action") or "")
    now = _runtime(request).clock.now()
    try:
        if verb == "duplicate":
            copy = campaigns_service.duplicate_campaign(
                db,
                workspace_id=ui.workspace_id,
                campaign_id=campaign_id,
                name=None,
                actor=ui.principal.actor,
                now=now,
            )
            db.commit()
            return redirect(
                request, f"/campaigns/{copy.id}", flash=Flash("success", f"Copied as {copy.name!r}.")
            )
        action = campaigns_service.ACTIONS.get(verb)
        if action is None:
            return redirect(request, f"/campaigns/{campaign_id}", flash=Flash("error", "Unknown action."))
        campaign = action.do(
            db, workspace_id=ui.workspace_id, campaign_id=campaign_id, actor=ui.principal.actor, now=now
        )
    except RapportError as exc:
        db.rollback()
        return redirect(request, f"/campaigns/{campaign_id}", flash=Flash("error", exc.message))
    db.commit()
    target = "/campaigns" if verb == "archive" else f"/campaigns/{campaign_id}"
    return redirect(
        request, target, flash=Flash("success", f"{action.done}: {campaign.name} is {campaign.status}.")
    )


@router.post("/{campaign_id}/test")
async def campaign_test_send(campaign_id: int, request: Request, ui: UiEditorPost, db: DbSession) -> Response:
    """Send each variant once to the given seed addresses (marked [TEST], not counted)."""
    form = await request.form()
    addresses = [a.strip() for a in str(form.get("addresses") or "").split(",") if a.strip()]
    runtime = _runtime(request)
    try:
        campaign = campaigns_service.get_campaign(db, workspace_id=ui.workspace_id, campaign_id=campaign_id)
        results = testsend.do_test_send(
            db,
            runtime=runtime,
            workspace=_workspace(db, ui),
            campaign=campaign,
            addresses=addresses,
            profile_id=None,
            variants=[],
            now=runtime.clock.now(),
        )
    except RapportError as exc:
        return redirect(request, f"/campaigns/{campaign_id}", flash=Flash("error", exc.message))
    failed = [r for r in results if r["status"] != "sent"]
    text = f"Test sent: {len(results) - len(failed)} of {len(results)} messages."
    if failed:
        text += " " + "; ".join(
            f"{r['variant']} to {r['address']}: {r.get('error') or r['status']}" for r in failed
        )
    return redirect(request, f"/campaigns/{campaign_id}", flash=Flash("error" if failed else "success", text))
