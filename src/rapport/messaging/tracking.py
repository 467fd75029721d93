"""Open and click tracking for marketing email: a signed pixel, signed redirect links, per-link stats.

The renderer calls ``Tracker.rewrite`` on a marketing email's HTML: every ``http(s)`` link (except the
unsubscribe/preference links) becomes ``{base_url}/t/c/{token}``, and a 1×1 pixel
``{base_url}/t/o/{token}.gif`` is added before ``</body>``. Tokens are signed (itsdangerous, the app's
secret): an open token carries the message id, a click token the message id and the original URL. The
redirect goes only where a valid token says — a forged or altered token is a 404, never a redirect (no open
redirect). The text part keeps the original links.

Feedback: the first open sets ``messages.opened_at`` and writes one ``email_opened`` event; every click
writes an ``email_clicked`` event with the ``url`` property (the first also sets ``clicked_at``, and counts
as an open when images were blocked). ``GET /api/v1/messages/{id}/links`` counts clicks per link.
Workspaces can turn tracking off with the setting ``{"email": {"tracking": false}}``.
"""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.accounts.principal import Principal
from rapport.api.deps import ReadDbSession, get_runtime, require_scope
from rapport.consent.tokens import COMPRESS_FROM, TokenSigner  # noqa: F401 - COMPRESS_FROM: re-exported
from rapport.errors import NotFound
from rapport.messaging import feedback
from rapport.messaging import service as messaging_service
from rapport.models import Event, Message, Workspace
from rapport.models.event import PROCESSED
from rapport.runtime import Runtime

OPEN_SALT = "rapport.track.open"
CLICK_SALT = "rapport.track.click"
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"}

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
#: A URL of the tracking endpoints on any host (or none): ``…/t/o/<token>.gif``, ``…/t/c/<token>``.
_TRACKING_URL = re.compile(r"(?:(?:https?:)?//[^\s\"'<>()/\\]+)?/t/[oc]/[A-Za-z0-9_.-]+", re.IGNORECASE)
_CLICK_TOKEN = re.compile(r"/t/c/([A-Za-z0-9_.-]+)", re.IGNORECASE)
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Tracker:
    """Makes signed tracking URLs under ``base_url`` and rewrites HTML to use them."""

    secret: str
    base_url: str
    _open: TokenSigner = field(init=False, repr=False, compare=False)
    _click: TokenSigner = field(init=False, repr=False, compare=False)
    _root: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # cached per Tracker (the deliverer keeps one per workspace and round): keys derived once
        object.__setattr__(self, "_open", TokenSigner(self.secret, OPEN_SALT))
        object.__setattr__(self, "_click", TokenSigner(self.secret, CLICK_SALT))
        object.__setattr__(self, "_root", self.base_url.rstrip("/"))

    def __reduce__(self) -> tuple[type[Tracker], tuple[str, str]]:
        # to a render helper (messaging/render_pool.py): the keys are derived again there
        return (type(self), (self.secret, self.base_url))

    def open_url(self, message_id: str) -> str:
        """Return the pixel URL of a message."""
        token = self._open.dumps({"m": message_id})
        return f"{self._root}/t/o/{token}.gif"

    def click_url(self, message_id: str, url: str) -> str:
        """Return the redirect URL that records a click on ``url`` in a message."""
        token = self._click.dumps({"m": message_id, "u": url})
        return f"{self._root}/t/c/{token}"

    def rewrite(self, html: str, *, message_id: str, keep: Collection[str] = ()) -> str:
        """Wrap the HTML's web links (not those in ``keep``) and add the open pixel."""
        own = f"{self.base_url.rstrip('/')}/t/"

        def wrap(match: re.Match[str]) -> str:
            target = html_lib.unescape(match.group(3)).strip()
            if not target.lower().startswith(("http://", "https://")) or target in keep:
                return match.group(0)
            if target.startswith(own):
                return match.group(0)
            return f"{match.group(1)}{match.group(2)}{self.click_url(message_id, target)}{match.group(2)}"

        out = _HREF.sub(wrap, html)
        pixel = f'<img src="{self.open_url(message_id)}" width="1" height="1" alt="" style="display:none">'
        ends = list(_BODY_END.finditer(out))
        if ends:
            cut = ends[-1].start()
            return out[:cut] + pixel + out[cut:]
        return out + pixel


def strip_tracking(html: str, *, secret: str) -> str:
    """Return a sent email's HTML as staff may look at it: no open pixel, each link to its destination.

    Staff reading a captured or sent email must never count as the customer engaging with it, and they
    should see where each link really goes. So, on the HTML ``Tracker.rewrite`` produced:

    * a link through the click redirect (``…/t/c/<token>``) gets back the destination its signed token
      carries; a token this server cannot read becomes ``#`` (it would lead nowhere useful either);
    * an ``<img>`` that loads from the tracking endpoints (the open pixel) is removed;
    * any other URL of the tracking endpoints, on any host and in any place (CSS, ``srcset``, an unquoted
      attribute), becomes ``about:blank``, so nothing in the preview can reach them.

    The delivered email is not touched: this is only for showing it. Example::

        strip_tracking('<a href="https://r.example/t/c/eyJ…">Sale</a><img src="https://r.example/t/o/eyJ….gif">',
                       secret=runtime.secret_key)
        # '<a href="https://shop.example/sale">Sale</a>'
    """

    def unwrap(match: re.Match[str]) -> str:
        found = _CLICK_TOKEN.search(html_lib.unescape(match.group(3)))
        if found is None:
            return match.group(0)
        decoded = read_click_token(secret, found.group(1))
        target = html_lib.escape(decoded[1] if decoded else "#", quote=True)
        return f"{match.group(1)}{match.group(2)}{target}{match.group(2)}"

    def drop_pixel(match: re.Match[str]) -> str:
        return "" if _TRACKING_URL.search(html_lib.unescape(match.group(0))) else match.group(0)

    out = _IMG.sub(drop_pixel, _HREF.sub(unwrap, html))
    return _TRACKING_URL.sub("about:blank", out)


def for_workspace(runtime: Runtime, workspace: Workspace) -> Tracker | None:
    """Return the tracker for a workspace's email, or None when it turned tracking off."""
    email = (workspace.settings or {}).get("email") or {}
    if isinstance(email, dict) and email.get("tracking") is False:
        return None
    return Tracker(secret=runtime.secret_key, base_url=runtime.settings.base_url)


def read_open_token(secret: str, token: str) -> str | None:
    """Return the message id of a valid open token, else None."""
    try:
        data = URLSafeSerializer(secret, salt=OPEN_SALT).loads(token)
    except BadSignature:
        return None
    return str(data["m"]) if isinstance(data, dict) and data.get("m") else None


def read_click_token(secret: str, token: str) -> tuple[str, str] | None:
    """Return (message id, url) of a valid click token, else None."""
    try:
        data = URLSafeSerializer(secret, salt=CLICK_SALT).loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not data.get("m") or not isinstance(data.get("u"), str):
        return None
    url = str(data["u"])
    if not url.lower().startswith(("http://", "https://")):
        return None
    return str(data["m"]), url


def _message(db: Session, message_id: str) -> Message | None:
    return db.scalar(select(Message).where(Message.message_id == message_id))


def record_open(db: Session, message: Message, *, now: datetime) -> bool:
    """Record the first open of a message; False when it was opened before."""
    if message.opened_at is not None:
        return False
    message.opened_at = now
    feedback.record(db, message, "opened", at=now, now=now)
    return True


def record_click(db: Session, message: Message, url: str, *, now: datetime) -> None:
    """Record one click on ``url`` (an ``email_clicked`` event per click; the first sets ``clicked_at``)."""
    record_open(db, message, now=now)
    if message.clicked_at is None:
        message.clicked_at = now
    db.add(
        Event(
            workspace_id=message.workspace_id,
            message_id=f"{_click_prefix(message.message_id)}{uuid.uuid4().hex}",
            type="track",
            event=feedback.event_name(message.channel, "clicked"),
            profile_id=message.profile_id,
            channel=message.channel,
            timestamp=now,
            received_at=now,
            properties={
                k: v
                for k, v in {
                    "message_id": message.message_id,
                    "url": url,
                    "link": hashlib.sha256(url.encode()).hexdigest()[:16],
                    "campaign_id": message.campaign_id,
                    "variant": message.variant,
                    "kind": message.kind,
                }.items()
                if v is not None
            },
            traits={},
            context={},
            extra={},
            source="rapport",
            state=PROCESSED,
        )
    )


def _click_prefix(message_id: str) -> str:
    return f"fb:{message_id}:click:"


def link_stats(db: Session, message: Message) -> list[dict[str, Any]]:
    """Count the clicks of each link of a message, most clicked first."""
    rows = db.execute(
        select(Event.properties, Event.timestamp).where(
            Event.workspace_id == message.workspace_id,
            Event.profile_id == message.profile_id,
            Event.event == feedback.event_name(message.channel, "clicked"),
            Event.message_id.startswith(_click_prefix(message.message_id), autoescape=True),
        )
    ).all()
    stats: dict[str, dict[str, Any]] = {}
    for properties, at in rows:
        url = str((properties or {}).get("url") or "")
        entry = stats.setdefault(
            url, {"url": url, "clicks": 0, "first_clicked_at": at, "last_clicked_at": at}
        )
        entry["clicks"] += 1
        entry["first_clicked_at"] = min(entry["first_clicked_at"], at)
        entry["last_clicked_at"] = max(entry["last_clicked_at"], at)
    return sorted(stats.values(), key=lambda e: (-e["clicks"], e["url"]))


router = APIRouter(tags=["tracking"])
Reader = Annotated[Principal, Depends(require_scope("profiles:read"))]


@router.get("/t/o/{token}.gif", include_in_schema=False)
def open_pixel(token: str, request: Request) -> Response:
    """Answer the 1×1 GIF; a valid token records the first open of its message."""
    runtime = get_runtime(request)
    message_id = read_open_token(runtime.secret_key, token)
    if message_id is not None:
        with runtime.sessions() as db:
            message = _message(db, message_id)
            if message is not None and record_open(db, message, now=runtime.clock.now()):
                db.commit()
    return Response(PIXEL_GIF, media_type="image/gif", headers=NO_STORE)


@router.get("/t/c/{token}", include_in_schema=False)
def click(token: str, request: Request) -> Response:
    """Record a click and redirect to the link's original URL — only for a validly signed token."""
    runtime = get_runtime(request)
    found = read_click_token(runtime.secret_key, token)
    if found is None:
        raise NotFound("this link is not valid")
    message_id, url = found
    with runtime.sessions() as db:
        message = _message(db, message_id)
        if message is not None:
            record_click(db, message, url, now=runtime.clock.now())
            db.commit()
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


@router.get("/api/v1/messages/{message_pk}/links")
def message_links(message_pk: int, principal: Reader, db: ReadDbSession) -> dict[str, Any]:
    """Per-link click counts of one message (from its ``email_clicked`` events)."""
    message = messaging_service.get_message(db, workspace_id=principal.workspace_id, message_pk=message_pk)
    links = link_stats(db, message)
    return {
        "id": message.id,
        "message_id": message.message_id,
        "opened_at": message.opened_at,
        "clicked_at": message.clicked_at,
        "clicks": sum(e["clicks"] for e in links),
        "links": links,
    }
