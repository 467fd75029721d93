"""Customers: search the directory, open a profile (scores, consent, segments, messages, timeline), export
the GDPR file (marketers and admins) and erase a person (admins, after typing who)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from rapport.api.deps import DbSession, ReadDbSession, client_ip
from rapport.campaigns import service as campaigns_service
from rapport.collect.processor import hooks_for
from rapport.consent import service as consent_service
from rapport.errors import NotFound
from rapport.kit.pagination import Page
from rapport.messaging import service as messaging_service
from rapport.profiles import directory, gdpr
from rapport.profiles import service as profiles_service
from rapport.profiles.schemas import ProfileRead
from rapport.runtime import Runtime
from rapport.web.rendering import SECURITY_HEADERS, Flash, format_when, redirect, render
from rapport.web.session import UiAdminPost, UiEditorPost, UiForbidden, UiPage, UiRoute, UiUser

router = APIRouter(prefix="/customers", route_class=UiRoute, include_in_schema=False)

SEARCH_PAGE_SIZE = 25
TIMELINE_PAGE_SIZE = 25
MESSAGES_SHOWN = 20
CONSENT_LOG_SHOWN = 50
MAX_PAGE = 2000
EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")
ProfileId = Annotated[int, Path(ge=1, le=2**62)]

#: Scores written by ``rapport.process`` (``ProfileScores``; the profile API shows them with the computed traits), in display order: (key, label, format).
SCORES: tuple[tuple[str, str, str], ...] = (
    ("clv_12m", "Lifetime value, next 12 months", "money"),
    ("p_alive", "Chance still active (P(alive))", "percent"),
    ("churn_danger", "Churn danger", "percent"),
    ("churn_band", "Churn danger band", "band"),
    ("value_tier", "Value tier", "label"),
    ("expected_purchases_90d", "Expected purchases, next 90 days", "decimal"),
    ("rfm_segment", "RFM segment", "label"),
    ("rfm_r", "Recency (R)", "integer"),
    ("rfm_f", "Frequency (F)", "integer"),
    ("rfm_m", "Monetary (M)", "integer"),
    ("loyalty_score", "Loyalty score", "decimal"),
    ("loyalty_level", "Loyalty level", "label"),
)
SCORE_KEYS = frozenset(key for key, _label, _fmt in SCORES)
PROPENSITY_PREFIX = "propensity_"


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


#: Codes whose words need more than underscores turned into spaces.
WORDS = {"cant_lose_them": "Can't lose them", "rfm": "RFM", "clv": "CLV"}
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def humanise(value: object) -> str:
    """Return a code such as ``at_risk`` as words: ``At risk`` (``cant_lose_them``: ``Can't lose them``)."""
    if str(value) in WORDS:
        return WORDS[str(value)]
    text = str(value).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def format_score(value: object, kind: str) -> str:
    """Format one score value for people."""
    if value is None:
        return "—"
    if kind in {"label", "band"}:
        return humanise(value)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if kind == "percent":
        return f"{value * 100:.1f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "integer":
        return f"{int(value)}"
    return f"{value:,.2f}"


def format_value(value: object) -> str:
    """Format a trait value for a table cell (JSON for lists and objects)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, str) and _ISO_TIME.match(value):
        try:
            return format_when(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    return str(value)


def split_computed(
    computed: dict[str, Any],
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[tuple[str, str]]]:
    """Split a profile's computed values into (scores, propensities, other computed traits)."""
    scores = [
        {"key": key, "label": label, "value": format_score(computed[key], fmt), "raw": str(computed[key])}
        for key, label, fmt in SCORES
        if key in computed
    ]
    propensities = [
        {
            "key": key,
            "label": humanise(key[len(PROPENSITY_PREFIX) :]),
            "value": format_score(value, "percent"),
            "raw": str(value),
        }
        for key, value in sorted(computed.items())
        if key.startswith(PROPENSITY_PREFIX)
    ]
    others = [
        (key, format_value(value))
        for key, value in sorted(computed.items())
        if key not in SCORE_KEYS and not key.startswith(PROPENSITY_PREFIX)
    ]
    return scores, propensities, others


def summarise_properties(properties: dict[str, Any], limit: int = 4) -> str:
    """Return a short ``key: value`` summary of an event's properties."""
    parts = []
    for key, value in list(properties.items())[:limit]:
        text = format_value(value)
        parts.append(f"{key}: {text if len(text) <= 60 else text[:57] + '…'}")
    if len(properties) > limit:
        parts.append(f"+{len(properties) - limit} more")
    return " · ".join(parts)


@router.get("")
def customers_page(
    request: Request,
    ui: UiPage,
    db: ReadDbSession,
    q: Annotated[str, Query(max_length=500)] = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    """Search customers by name, email, phone or id; an empty search lists the newest."""
    found = directory.find_customers(
        db,
        workspace_id=ui.workspace_id,
        query=q,
        page=Page(limit=SEARCH_PAGE_SIZE, offset=(page - 1) * SEARCH_PAGE_SIZE),
    )
    total = profiles_service.overview(db, workspace_id=ui.workspace_id)["total"]
    context = {"title": "Customers", "q": q.strip(), "found": found, "page": page, "total": total}
    return render(request, "customers/list.html", context)


def _timeline_context(
    db: Session,
    ui: UiUser,
    profile_id: int,
    *,
    offset: int,
    types: list[str],
    channels: list[str],
) -> dict[str, Any]:
    rows = profiles_service.timeline(
        db,
        workspace_id=ui.workspace_id,
        profile_id=profile_id,
        page=Page(limit=TIMELINE_PAGE_SIZE + 1, offset=offset),
        types=types,
        channels=channels,
    )
    events = [
        {
            "id": e.id,
            "timestamp": e.timestamp,
            "type": e.type,
            "name": e.event or e.type,
            "channel": e.channel,
            "summary": summarise_properties(e.properties or e.traits or {}),
        }
        for e in rows[:TIMELINE_PAGE_SIZE]
    ]
    more_query = [("offset", str(offset + TIMELINE_PAGE_SIZE))]
    more_query += [("type", t) for t in types] + [("channel", c) for c in channels]
    return {
        "profile_id": profile_id,
        "events": events,
        "has_more": len(rows) > TIMELINE_PAGE_SIZE,
        "next_offset": offset + TIMELINE_PAGE_SIZE,
        "more_query": more_query,
        "offset": offset,
    }


def _clean(values: list[str] | None, allowed: tuple[str, ...] | list[str]) -> list[str]:
    return [v for v in dict.fromkeys(values or []) if v in allowed]


@router.get("/{profile_id}")
def profile_page(
    request: Request,
    profile_id: ProfileId,
    ui: UiPage,
    db: ReadDbSession,
    type: Annotated[list[str] | None, Query()] = None,
    channel: Annotated[list[str] | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Show one customer: identities, traits, scores, consent, segments, messages, merges, timeline."""
    now = _runtime(request).clock.now()
    profile = profiles_service.read_profile(db, workspace_id=ui.workspace_id, profile_id=profile_id, now=now)
    if profile.id != profile_id:
        return redirect(request, f"/customers/{profile.id}")
    channels_seen = profiles_service.timeline_channels(
        db, workspace_id=ui.workspace_id, profile_id=profile.id
    )
    types = _clean(type, EVENT_TYPES)
    channels = _clean(channel, channels_seen)
    scores, propensities, computed = split_computed(profile.computed)
    messages = messaging_service.list_for_profile(
        db, workspace_id=ui.workspace_id, profile_id=profile.id, limit=MESSAGES_SHOWN
    )
    context: dict[str, Any] = {
        "title": profile.name or profile.email or f"Customer {profile.id}",
        "profile": profile,
        "display_name": display_name(profile),
        "traits": [(k, format_value(v)) for k, v in sorted(profile.traits.items())],
        "scores": scores,
        "propensities": propensities,
        "computed": computed,
        "subscriptions": consent_service.list_subscriptions(
            db, workspace_id=ui.workspace_id, profile_id=profile.id
        ),
        "consent_log": consent_service.list_log(
            db, workspace_id=ui.workspace_id, profile_id=profile.id, limit=CONSENT_LOG_SHOWN
        ),
        "segments": profiles_service.segment_memberships(
            db, workspace_id=ui.workspace_id, profile_id=profile.id
        ),
        "messages": messages,
        "campaign_names": campaign_names(db, ui.workspace_id, {m.campaign_id for m in messages}),
        "event_types": EVENT_TYPES,
        "event_channels": channels_seen,
        "chosen_types": types,
        "chosen_channels": channels,
    }
    context.update(_timeline_context(db, ui, profile.id, offset=offset, types=types, channels=channels))
    return render(request, "customers/profile.html", context)


def campaign_names(db: Session, workspace_id: int, campaign_ids: set[int | None]) -> dict[int, str]:
    """Return the names of these campaigns (ids that no longer exist are left out)."""
    names: dict[int, str] = {}
    for campaign_id in sorted(i for i in campaign_ids if i is not None):
        try:
            campaign = campaigns_service.get_campaign(db, workspace_id=workspace_id, campaign_id=campaign_id)
        except NotFound:
            continue
        names[campaign_id] = campaign.name
    return names


def display_name(profile: ProfileRead) -> str:
    """Return the best label of a customer: name, email, phone, or the id."""
    return profile.name or profile.email or profile.phone or f"Customer #{profile.id}"


@router.get("/{profile_id}/timeline")
def timeline_rows(
    request: Request,
    profile_id: ProfileId,
    ui: UiPage,
    db: ReadDbSession,
    type: Annotated[list[str] | None, Query()] = None,
    channel: Annotated[list[str] | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Return the next timeline rows (htmx "load more"); a plain visit opens the profile page there."""
    profile = profiles_service.get_profile(db, workspace_id=ui.workspace_id, profile_id=profile_id)
    if request.headers.get("hx-request") != "true":
        pairs = [("offset", str(offset))] + [("type", t) for t in _clean(type, EVENT_TYPES)]
        pairs += [("channel", c) for c in (channel or [])][:20]
        return redirect(request, f"/customers/{profile.id}?{urlencode(pairs)}#timeline")
    channels_seen = profiles_service.timeline_channels(
        db, workspace_id=ui.workspace_id, profile_id=profile.id
    )
    context = _timeline_context(
        db,
        ui,
        profile.id,
        offset=offset,
        types=_clean(type, EVENT_TYPES),
        channels=_clean(channel, channels_seen),
    )
    return render(request, "customers/_timeline_rows.html", context)


@router.post("/{profile_id}/export")
def export_customer(request: Request, profile_id: ProfileId, ui: UiEditorPost, db: DbSession) -> Response:
    """Download everything held about the customer as JSON (GDPR Art. 20); audited."""
    runtime = _runtime(request)
    data = gdpr.export_profile(
        db,
        workspace_id=ui.workspace_id,
        profile_id=profile_id,
        actor=ui.principal.actor,
        now=runtime.clock.now(),
        hooks=hooks_for(runtime),
        ip=client_ip(request),
    )
    db.commit()
    body = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    exported_id = data["profile"]["id"]
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="customer-{exported_id}-export.json"',
    }
    return Response(body, media_type="application/json", headers=headers)


def erase_confirmation(profile: ProfileRead) -> str:
    """Return what an admin must type to erase this customer: the email, else the profile id."""
    return profile.email or str(profile.id)


def _erase_page(
    request: Request, db: Session, ui: UiUser, profile_id: int, *, typed: str = "", error: str = ""
) -> Response:
    if not ui.is_admin:
        raise UiForbidden(f"Your role ({ui.role.value}) cannot erase customers.")
    profile = profiles_service.read_profile(db, workspace_id=ui.workspace_id, profile_id=profile_id)
    context = {
        "title": f"Erase {display_name(profile)}",
        "profile": profile,
        "display_name": display_name(profile),
        "confirmation": erase_confirmation(profile),
        "typed": typed,
        "error": error,
    }
    return render(request, "customers/erase.html", context)


@router.get("/{profile_id}/erase")
def erase_form(request: Request, profile_id: ProfileId, ui: UiPage, db: ReadDbSession) -> Response:
    """Ask an admin to confirm an erasure by typing the customer's email (or id)."""
    return _erase_page(request, db, ui, profile_id)


@router.post("/{profile_id}/erase")
def erase_customer(
    request: Request,
    profile_id: ProfileId,
    ui: UiAdminPost,
    db: DbSession,
    confirm: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """Erase the customer for good (GDPR Art. 17) once the confirmation matches; audited."""
    profile = profiles_service.read_profile(db, workspace_id=ui.workspace_id, profile_id=profile_id)
    expected = erase_confirmation(profile)
    if confirm.strip().lower() != expected.lower():
        message = f"Type {expected} exactly to confirm. Nothing was erased."
        return _erase_page(request, db, ui, profile.id, typed=confirm, error=message)
    runtime = _runtime(request)
    result = gdpr.erase_profile(
        db,
        workspace_id=ui.workspace_id,
        profile_id=profile.id,
        actor=ui.principal.actor,
        hooks=hooks_for(runtime),
        ip=client_ip(request),
    )
    db.commit()
    deleted = result.deleted
    text = (
        f"Customer #{result.profile_id} is erased: {deleted.get('events', 0):,} events, "
        f"{deleted.get('identities', 0):,} identifiers and {deleted.get('profiles', 1)} profile(s) deleted; "
        f"{result.suppressed} identifier(s) blocked from coming back."
    )
    return redirect(request, "/customers", flash=Flash("success", text))
