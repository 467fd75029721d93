"""Campaigns pages: the list, a step-by-step form for a new campaign (basics → audience or trigger →
content and arms → schedule and goal), the campaign page (review with the audience estimate before
launch; status, actions and results per arm with lift against control after), and the test send.

The form works without JavaScript (every section is shown); ``static/js/campaigns.js`` hides the sections
that do not apply to the chosen kind and draws the results chart from the JSON the page embeds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from rapport.api.deps import DbSession, ReadDbSession
from rapport.campaigns import measure, schedule, testsend
from rapport.campaigns import repository as campaigns_repo
from rapport.campaigns import service as campaigns_service
from rapport.campaigns.schemas import CampaignUpdate
from rapport.consent import service as consent_service
from rapport.content import service as content_service
from rapport.errors import RapportError
from rapport.kit.pagination import Page
from rapport.models import Campaign, Workspace
from rapport.runtime import Runtime
from rapport.segments import service as segments_service
from rapport.web import campaigns_form
from rapport.web.rendering import Flash, redirect, render
from rapport.web.session import UiEditorPost, UiPage, UiRoute, UiUser

router = APIRouter(prefix="/campaigns", route_class=UiRoute, include_in_schema=False)

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
        "variant_keys": campaigns_form.VARIANT_KEYS,
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
            **_form_context(db, ui, []),
        },
    )


@router.post("/new")
async def create_campaign(request: Request, ui: UiEditorPost, db: DbSession) -> Response:
    """Save the new campaign as a draft and open its review page; else show the form again with every
    problem listed and next to its input, and what was typed kept."""
    form = await request.form()
    workspace = _workspace(db, ui)
    now = _runtime(request).clock.now()
    checked = campaigns_form.check_form(form, timezone=workspace.timezone, now=now)
    errors = checked.errors
    if checked.data is not None:
        try:
            campaign = campaigns_service.create_campaign(
                db, workspace_id=ui.workspace_id, data=checked.data, actor=ui.principal.actor, now=now
            )
        except RapportError as exc:
            errors = [campaigns_form.service_error(exc, body=checked.body)]
    if errors:
        db.rollback()
        context = {"title": "New campaign", "form": _form_echo(form), **_form_context(db, ui, errors)}
        return render(request, "campaigns/new.html", context, status_code=400)
    db.commit()
    return redirect(
        request, f"/campaigns/{campaign.id}", flash=Flash("success", f"Draft {campaign.name!r} saved.")
    )


def _form_context(db: Session, ui: UiUser, errors: list[campaigns_form.FormError]) -> dict[str, Any]:
    """What the form shows besides the values: the choices, the inputs' bounds and the problems."""
    at: dict[str, str] = {}
    for error in errors:
        if error.input is not None:
            at.setdefault(error.input, error.message)
    return {"errors": errors, "error_at": at, "numbers": campaigns_form.NUMBERS, **_choices(db, ui)}


def _form_echo(form: FormData) -> FormEcho:
    echo = FormEcho({key: form.get(key) for key in form})
    for name in ("segment_ids", "exclude_segment_ids"):
        echo[name] = {int(v) for v in map(str, form.getlist(name)) if v.isdigit()}
    return echo


def _results_context(db: Session, campaign: Campaign, *, now: datetime, oob: bool) -> dict[str, Any]:
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
    # a draft whose send time went by is refused at launch: the actions offer to send it now instead
    send_at_passed = (
        campaign.status == campaigns_service.DRAFT
        and campaign.send_at is not None
        and schedule.send_at_passed(campaign.send_at, now=now)
    )
    return {
        "campaign": campaign,
        "stats": stats,
        "chart": chart,
        "live": campaign.status in LIVE,
        "send_at_passed": send_at_passed,
        "oob": oob,
    }


def _detail_context(request: Request, ui: UiUser, db: Session, campaign: Campaign) -> dict[str, Any]:
    variants = campaigns_repo.variants_of(db, campaign_id=campaign.id)
    templates = campaigns_repo.templates_by_id(
        db, workspace_id=ui.workspace_id, ids={v.template_id for v in variants if v.template_id}
    )
    segments = {
        s.id: s.name
        for s in segments_service.list_segments(db, workspace_id=ui.workspace_id, include_archived=True)
    }
    now = _runtime(request).clock.now()
    estimate = None
    if campaign.kind == "broadcast" and campaign.status in {"draft", "scheduled"}:
        estimate = campaigns_service.estimate_audience(
            db, workspace=_workspace(db, ui), campaign=campaign, now=now
        )
    return {
        "title": campaign.name,
        "variants": variants,
        "templates": templates,
        "segment_names": segments,
        "estimate": estimate,
        "kinds": KIND_LABELS,
        **_results_context(db, campaign, now=now, oob=False),
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
    context = _results_context(db, campaign, now=_runtime(request).clock.now(), oob=True)
    return render(request, "campaigns/_results.html", context)


@router.post("/{campaign_id}/action")
async def campaign_action(campaign_id: int, request: Request, ui: UiEditorPost, db: DbSession) -> Response:
    """Launch, pause, resume, cancel, archive or duplicate the campaign; or send a draft whose send time
    has passed now instead (its send time dropped, then launched)."""
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
        if verb == "send_now":
            campaigns_service.update_campaign(
                db,
                workspace_id=ui.workspace_id,
                campaign_id=campaign_id,
                data=CampaignUpdate(send_at=None),
                actor=ui.principal.actor,
                now=now,
            )
            verb = "launch"
        action = campaigns_service.ACTIONS.get(verb)
        if action is None:
            return redirect(request, f"/campaigns/{campaign_id}", flash=Flash("error", "Unknown action."))
        campaign = action.do(
            db, workspace_id=ui.workspace_id, campaign_id=campaign_id, actor=ui.principal.actor, now=now
        )
    except RapportError as exc:
        db.rollback()
        text = campaigns_form.sentence(exc.message)
        return redirect(request, f"/campaigns/{campaign_id}", flash=Flash("error", text))
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
