"""Web Push subscription registration from the browser SDK (write key) and its removal.

``POST /v1/push/subscribe`` with the write key (HTTP Basic username, like the Segment SDKs) and
``{"userId" | "anonymousId", "subscription": PushSubscription.toJSON(), "userAgent"?}`` stores the
subscription for the person that identity resolves to. The person must be known already (the SDK sends
``identify`` first; the processor resolves it within moments): an unknown identity is a 404 the SDK retries.
An endpoint is one browser: registering it again moves it to the new person. Subscribing is not consent to
marketing: the write key can never grant consent (R16), so marketing push also needs a consent grant made
with a secret key; service pushes go to any subscriber. ``DELETE /v1/push/subscribe`` with
``{"endpoint"}`` forgets a browser.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from rapport.accounts import service as accounts_service
from rapport.accounts.principal import Principal
from rapport.api.deps import DbSession, get_runtime, presented_key
from rapport.collect import identity as ident
from rapport.errors import NotFound, Unauthenticated, ValidationFailed
from rapport.models import Identity, Profile, PushSubscriptionRecord


def sdk_principal(request: Request) -> Principal:
    """Authenticate a browser/app SDK call: the workspace's write key (or a secret key)."""
    key = presented_key(request)
    if not key:
        raise Unauthenticated("send the write key as the HTTP Basic username")
    with get_runtime(request).read_sessions() as db:
        return accounts_service.authenticate_key(db, key)


Sdk = Annotated[Principal, Depends(sdk_principal)]


def resolve_profile(
    db: Session, workspace_id: int, *, user_id: str | None, anonymous_id: str | None
) -> Profile:
    """Return the live profile of a userId (preferred) or anonymousId, or raise NotFound."""
    for kind, value in ((ident.USER_ID, user_id), (ident.ANONYMOUS_ID, anonymous_id)):
        if not value:
            continue
        profile_id = db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == workspace_id, Identity.kind == kind, Identity.value == value
            )
        )
        profile = db.get(Profile, profile_id) if profile_id is not None else None
        hops = 0
        while profile is not None and profile.merged_into_id is not None and hops < 10:
            profile = db.get(Profile, profile.merged_into_id)
            hops += 1
        if profile is not None and profile.workspace_id == workspace_id:
            return profile
    if not user_id and not anonymous_id:
        raise ValidationFailed("give userId or anonymousId")
    raise NotFound("no profile for this identity yet; send identify first and retry")


class SubscriptionKeys(BaseModel):
    """The browser's encryption keys."""

    p256dh: str = Field(min_length=10, max_length=200)
    auth: str = Field(min_length=4, max_length=100)


class BrowserSubscription(BaseModel):
    """``PushSubscription.toJSON()``."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str = Field(min_length=10, max_length=1000)
    keys: SubscriptionKeys


class SubscribeBody(BaseModel):
    """A browser subscribing to push for a person."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    user_id: str | None = Field(default=None, alias="userId", max_length=400)
    anonymous_id: str | None = Field(default=None, alias="anonymousId", max_length=400)
    subscription: BrowserSubscription
    user_agent: str | None = Field(default=None, alias="userAgent", max_length=400)


class UnsubscribeBody(BaseModel):
    """A browser withdrawing its subscription."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str = Field(min_length=10, max_length=1000)


def _check_endpoint(endpoint: str, *, allow_http: bool) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise ValidationFailed(
            "the subscription endpoint must be an https URL", details={"field": "endpoint"}
        )
    if not parts.hostname:
        raise ValidationFailed("the subscription endpoint has no host", details={"field": "endpoint"})


def subscribe(
    db: Session, *, workspace_id: int, profile: Profile, body: SubscribeBody, allow_http: bool
) -> PushSubscriptionRecord:
    """Store (or move) a browser subscription for ``profile``."""
    sub = body.subscription
    _check_endpoint(sub.endpoint, allow_http=allow_http)
    row = db.scalar(
        select(PushSubscriptionRecord).where(
            PushSubscriptionRecord.workspace_id == workspace_id,
            PushSubscriptionRecord.endpoint == sub.endpoint,
        )
    )
    if row is None:
        row = PushSubscriptionRecord(workspace_id=workspace_id, endpoint=sub.endpoint, profile_id=profile.id)
        db.add(row)
    row.profile_id = profile.id
    row.p256dh = sub.keys.p256dh
    row.auth = sub.keys.auth
    row.user_agent = body.user_agent
    db.flush()
    return row


router = APIRouter(prefix="/v1/push", tags=["push"])


@router.post("/subscribe", status_code=201)
def push_subscribe(body: SubscribeBody, principal: Sdk, db: DbSession, request: Request) -> dict[str, Any]:
    """Register this browser's push subscription for the person (write key)."""
    runtime = get_runtime(request)
    profile = resolve_profile(
        db, principal.workspace_id, user_id=body.user_id, anonymous_id=body.anonymous_id
    )
    row = subscribe(
        db,
        workspace_id=principal.workspace_id,
        profile=profile,
        body=body,
        allow_http=runtime.settings.outbound_allow_loopback,
    )
    db.commit()
    return {"success": True, "endpoint": row.endpoint}


@router.delete("/subscribe")
def push_unsubscribe(body: UnsubscribeBody, principal: Sdk, db: DbSession) -> dict[str, Any]:
    """Forget a browser's push subscription (write key)."""
    result = db.execute(
        delete(PushSubscriptionRecord).where(
            PushSubscriptionRecord.workspace_id == principal.workspace_id,
            PushSubscriptionRecord.endpoint == body.endpoint,
        )
    )
    db.commit()
    return {"success": True, "removed": int(getattr(result, "rowcount", 0) or 0)}
