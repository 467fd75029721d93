"""Customer-facing consent pages: one-click unsubscribe (RFC 8058), preference centre, opt-in confirmation.

No login and no cookie: the signed token in the URL is the capability. GETs only show pages (mail scanners
follow GETs); every change is a POST, committed before the answer (R11, R12).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from rapport.accounts import service as accounts_service
from rapport.api.deps import get_runtime
from rapport.consent import rules, service, tokens
from rapport.consent.tokens import LinkTarget
from rapport.errors import NotFound
from rapport.runtime import Runtime

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_env = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)
CHANNEL_LABELS = {
    "email": "email",
    "sms": "text message",
    "push": "push notification",
    "inapp": "in-app",
    "webhook": "webhook",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _brand(db: Session, workspace_id: int) -> dict[str, str]:
    workspace = accounts_service.get_workspace(db, workspace_id)
    brand = (workspace.settings or {}).get("brand", {})
    return {"name": str(brand.get("name") or workspace.name), "color": str(brand.get("color") or "#2f4b7c")}


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        _env.get_template(name).render(**context), status_code=status, headers=SECURITY_HEADERS
    )


def _invalid(message: str) -> HTMLResponse:
    return _page("invalid.html", 404, brand={"name": "Rapport", "color": "#2f4b7c"}, message=message)


def _stale_form(source: str) -> HTMLResponse:
    return _page(
        "invalid.html",
        403,
        brand={"name": "Rapport", "color": "#2f4b7c"},
        message=f"This form is out of date. Open the link from your {source} again.",
    )


def _target(runtime: Runtime, token: str) -> LinkTarget:
    return tokens.read_unsubscribe_token(runtime.secret_key, token)


def _preferences(
    runtime: Runtime, db: Session, token: str, target: LinkTarget, done: str | None
) -> HTMLResponse:
    subs = {
        (s.channel, s.topic): s.state
        for s in service.list_subscriptions(
            db, workspace_id=target.workspace_id, profile_id=target.profile_id
        )
    }
    topics = [
        {
            "key": t.key,
            "name": t.name,
            "description": t.description,
            "subscribed": (
                subs.get((target.channel, t.key))
                or subs.get(("", t.key))
                or (rules.NEVER_ASKED if t.opt_in else rules.SUBSCRIBED)
            )
            == rules.SUBSCRIBED,
        }
        for t in service.list_topics(db, workspace_id=target.workspace_id)
        if not t.is_service
    ]
    channels = [
        {
            "key": c,
            "label": f"Marketing by {CHANNEL_LABELS[c]}",
            "subscribed": subs.get((c, "")) == rules.SUBSCRIBED,
        }
        for c in ("email", "sms")
        if (c, "") in subs or c == target.channel
    ]
    topic_name = next((t["name"] for t in topics if t["key"] == target.topic), target.topic)
    return _page(
        "preferences.html",
        brand=_brand(db, target.workspace_id),
        token=token,
        form_token=tokens.form_token(runtime.secret_key, token),
        topics=topics,
        channels=channels,
        done=done,
        channel_label=CHANNEL_LABELS.get(target.channel, target.channel),
        scope_label=f"“{topic_name}”"
        if target.topic
        else f"all marketing by {CHANNEL_LABELS.get(target.channel)}",
    )


@router.get("/u/{token}")
def show_preferences(token: str, runtime: RuntimeDep) -> Response:
    """Show the unsubscribe confirmation and the preference centre; changes nothing."""
    try:
        target = _target(runtime, token)
        with runtime.read_sessions() as db:
            service.get_profile(db, workspace_id=target.workspace_id, profile_id=target.profile_id)
            return _preferences(runtime, db, token, target, None)
    except NotFound as exc:
        return _invalid(exc.message)


def _unsubscribe(runtime: Runtime, target: LinkTarget, *, source: str, ip: str | None) -> None:
    with runtime.sessions() as db:
        profile = service.get_profile(db, workspace_id=target.workspace_id, profile_id=target.profile_id)
        service.record(
            db,
            workspace_id=target.workspace_id,
            profile_id=profile.id,
            now=runtime.clock.now(),
            statement=service.Statement(
                channel=target.channel if not target.topic else rules.ANY_CHANNEL,
                topic=target.topic,
                action=rules.WITHDRAW,
                source=source,
                actor=f"profile:{profile.id}",
                ip=ip,
                details={"message_id": target.message_id} if target.message_id else None,
            ),
        )
        db.commit()


@router.post("/u/{token}")
async def one_click_unsubscribe(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """RFC 8058 one-click unsubscribe (``List-Unsubscribe=One-Click``) or the page's button: 200, no redirect."""
    try:
        form = await request.form()
        one_click = form.get("List-Unsubscribe") == "One-Click"
        sent_form_token = str(form.get("form_token", ""))
    except Exception:  # whatever the body, a POST here unsubscribes: less mail, never more
        one_click, sent_form_token = True, ""
    ip = request.client.host if request.client else None
    try:
        target = _target(runtime, token)
        await run_in_threadpool(
            _unsubscribe, runtime, target, source="one_click" if one_click else "unsubscribe_page", ip=ip
        )
    except NotFound as exc:
        if one_click:
            return PlainTextResponse(exc.message, status_code=404)
        return _invalid(exc.message)
    if one_click or not tokens.check_form_token(runtime.secret_key, token, sent_form_token):
        return PlainTextResponse(
            "You are unsubscribed.", status_code=200, headers={"Cache-Control": "no-store"}
        )

    def page() -> HTMLResponse:
        with runtime.read_sessions() as db:
            return _preferences(runtime, db, token, target, "You are unsubscribed")

    return await run_in_threadpool(page)


@router.post("/u/{token}/preferences")
def save_preferences(
    token: str,
    request: Request,
    runtime: RuntimeDep,
    form_token: Annotated[str, Form()] = "",
    topic: Annotated[list[str] | None, Form()] = None,
    channel: Annotated[list[str] | None, Form()] = None,
    pause_weeks: Annotated[int, Form()] = 0,
) -> Response:
    """Save the preference centre: topics, channels, a break; each change is a consent log entry."""
    try:
        target = _target(runtime, token)
    except NotFound as exc:
        return _invalid(exc.message)
    if not tokens.check_form_token(runtime.secret_key, token, form_token):
        return _stale_form("message")
    ip = request.client.host if request.client else None
    wanted_topics = set(topic or [])
    wanted_channels = set(channel or [])
    now = runtime.clock.now()
    actor = f"profile:{target.profile_id}"
    with runtime.sessions() as db:
        profile = service.get_profile(db, workspace_id=target.workspace_id, profile_id=target.profile_id)
        current = {
            (s.channel, s.topic): s.state
            for s in service.list_subscriptions(db, workspace_id=target.workspace_id, profile_id=profile.id)
        }

        def say(action: str, *, channel: str, topic: str = "") -> None:
            service.record(
                db,
                workspace_id=target.workspace_id,
                profile_id=profile.id,
                now=now,
                statement=service.Statement(
                    channel=channel,
                    topic=topic,
                    action=action,
                    ip=ip,
                    actor=actor,
                    source="preference_centre",
                ),
            )

        for t in service.list_topics(db, workspace_id=target.workspace_id):
            if t.is_service:
                continue
            state = current.get(("", t.key)) or (rules.NEVER_ASKED if t.opt_in else rules.SUBSCRIBED)
            want = t.key in wanted_topics
            if want != (state == rules.SUBSCRIBED):
                say(rules.GRANT if want else rules.WITHDRAW, channel="", topic=t.key)
        for c in ("email", "sms"):
            if (c, "") not in current and c != target.channel:
                continue
            subscribed = current.get((c, "")) == rules.SUBSCRIBED
            if c not in wanted_channels and subscribed:
                say(rules.WITHDRAW, channel=c)
            elif c in wanted_channels and not subscribed and current.get((c, "")) == rules.UNSUBSCRIBED:
                # Only a person who had said yes before can say yes again here; a first yes needs a double
                # opt-in (email) or a keyword (SMS), so this page never widens consent by itself.
                say(rules.GRANT, channel=c)
        if pause_weeks:
            service.pause(
                db,
                workspace_id=target.workspace_id,
                profile_id=profile.id,
                channel=target.channel,
                weeks=pause_weeks,
                source="preference_centre",
                actor=actor,
                now=now,
            )
        db.commit()
        return _preferences(runtime, db, token, target, "Your choices are saved")


@router.get("/c/{token}")
def show_confirmation(token: str, runtime: RuntimeDep) -> Response:
    """Show the double opt-in confirmation button (a GET never confirms: scanners follow links)."""
    try:
        target = tokens.read_confirm_token(runtime.secret_key, token)
        with runtime.read_sessions() as db:
            service.get_profile(db, workspace_id=target.workspace_id, profile_id=target.profile_id)
            return _page(
                "confirm.html",
                brand=_brand(db, target.workspace_id),
                token=token,
                confirmed=False,
                form_token=tokens.form_token(runtime.secret_key, token),
            )
    except NotFound as exc:
        return _invalid(exc.message)


@router.post("/c/{token}")
def confirm(
    token: str, request: Request, runtime: RuntimeDep, form_token: Annotated[str, Form()] = ""
) -> Response:
    """Confirm a double opt-in: the email channel (and the topic asked for) become subscribed."""
    try:
        target = tokens.read_confirm_token(runtime.secret_key, token)
    except NotFound as exc:
        return _invalid(exc.message)
    if not tokens.check_form_token(runtime.secret_key, token, form_token):
        return _stale_form("email")
    ip = request.client.host if request.client else None
    with runtime.sessions() as db:
        profile = service.get_profile(db, workspace_id=target.workspace_id, profile_id=target.profile_id)
        actor = f"profile:{profile.id}"
        service.record(
            db,
            workspace_id=target.workspace_id,
            profile_id=profile.id,
            now=runtime.clock.now(),
            statement=service.Statement(
                channel="email", action=rules.CONFIRM, source="double_opt_in", actor=actor, ip=ip
            ),
        )
        if target.topic:
            service.record(
                db,
                workspace_id=target.workspace_id,
                profile_id=profile.id,
                now=runtime.clock.now(),
                statement=service.Statement(
                    channel="",
                    topic=target.topic,
                    action=rules.GRANT,
                    source="double_opt_in",
                    actor=actor,
                    ip=ip,
                ),
            )
        db.commit()
        return _page(
            "confirm.html", brand=_brand(db, target.workspace_id), token=token, confirmed=True, form_token=""
        )
