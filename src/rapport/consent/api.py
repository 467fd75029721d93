"""HTTP routes: topics, a profile's consent (state + log), consent changes and double opt-in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from rapport.accounts.principal import Principal
from rapport.api.deps import DbSession, ReadDbSession, client_ip, get_runtime, require_scope
from rapport.consent import links, rules, service
from rapport.consent.schemas import (
    ConsentChange,
    ConsentRead,
    ConsentRecordRead,
    DoubleOptInRequest,
    DoubleOptInStarted,
    SubscriptionRead,
    TopicCreate,
    TopicRead,
)
from rapport.consent.tokens import LinkTarget
from rapport.runtime import Runtime
from rapport.worker import queue

router = APIRouter(prefix="/api/v1", tags=["consent"])

Reader = Annotated[Principal, Depends(require_scope("profiles:read"))]
Granter = Annotated[Principal, Depends(require_scope("consent:write"))]
SettingsWriter = Annotated[Principal, Depends(require_scope("settings:write"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@router.get("/topics", response_model=list[TopicRead])
def list_topics(principal: Reader, db: ReadDbSession) -> object:
    """List the workspace's subscription topics."""
    return service.list_topics(db, workspace_id=principal.workspace_id)


@router.post("/topics", response_model=TopicRead, status_code=201)
def create_topic(body: TopicCreate, principal: SettingsWriter, db: DbSession) -> object:
    """Create a subscription topic (opt-in or opt-out; service topics are not marketing)."""
    topic = service.create_topic(
        db,
        workspace_id=principal.workspace_id,
        key=body.key,
        name=body.name,
        description=body.description,
        opt_in=body.opt_in,
        is_service=body.is_service,
        actor=principal.actor,
    )
    db.commit()
    return topic


@router.get("/topics/{topic_id}", response_model=TopicRead)
def read_topic(topic_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one topic."""
    return service.get_topic(db, workspace_id=principal.workspace_id, topic_id=topic_id)


def _consent_read(
    db: DbSession | ReadDbSession, workspace_id: int, profile_id: int, limit: int
) -> ConsentRead:
    subs = service.list_subscriptions(db, workspace_id=workspace_id, profile_id=profile_id)
    log = service.list_log(db, workspace_id=workspace_id, profile_id=profile_id, limit=limit)
    return ConsentRead(
        profile_id=profile_id,
        subscriptions=[SubscriptionRead.model_validate(s) for s in subs],
        log=[ConsentRecordRead.model_validate(r) for r in log],
    )


@router.get("/profiles/{profile_id}/consent", response_model=ConsentRead)
def read_consent(
    profile_id: int, principal: Reader, db: ReadDbSession, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> object:
    """Return a profile's subscription state per channel and topic, and its consent log."""
    return _consent_read(db, principal.workspace_id, profile_id, limit)


@router.post("/profiles/{profile_id}/consent", response_model=ConsentRead)
def change_consent(
    profile_id: int,
    body: ConsentChange,
    principal: Granter,
    db: DbSession,
    runtime: RuntimeDep,
    request: Request,
) -> object:
    """Record a consent statement made on the person's behalf; needs the consent:write scope."""
    now = runtime.clock.now()
    if body.action == rules.PAUSE:
        service.pause(
            db,
            workspace_id=principal.workspace_id,
            profile_id=profile_id,
            channel=body.channel,
            weeks=body.weeks or 4,
            source=body.source,
            actor=principal.actor,
            now=now,
        )
    else:
        service.record(
            db,
            workspace_id=principal.workspace_id,
            profile_id=profile_id,
            now=now,
            statement=service.Statement(
                channel=body.channel,
                topic=body.topic,
                action=body.action,
                source=body.source,
                actor=principal.actor,
                wording=body.wording,
                wording_version=body.wording_version,
                ip=body.ip or client_ip(request),
                user_agent=body.user_agent,
            ),
        )
    db.commit()
    return _consent_read(db, principal.workspace_id, profile_id, 100)


@router.post(
    "/profiles/{profile_id}/consent/double-opt-in", response_model=DoubleOptInStarted, status_code=202
)
def start_double_opt_in(
    profile_id: int,
    body: DoubleOptInRequest,
    principal: Granter,
    db: DbSession,
    runtime: RuntimeDep,
    request: Request,
) -> object:
    """Put the email address in "pending" and queue the confirmation email; nothing else goes until the click."""
    now = runtime.clock.now()
    profile = service.get_profile(db, workspace_id=principal.workspace_id, profile_id=profile_id)
    entry = service.record(
        db,
        workspace_id=principal.workspace_id,
        profile_id=profile.id,
        now=now,
        statement=service.Statement(
            channel="email",
            topic="",
            action=rules.REQUEST,
            source=body.source,
            actor=principal.actor,
            wording=body.wording,
            wording_version=body.wording_version,
            ip=body.ip or client_ip(request),
            details={"topic": body.topic} if body.topic else None,
        ),
    )
    target = LinkTarget(
        workspace_id=principal.workspace_id, profile_id=profile.id, channel="email", topic=body.topic
    )
    if entry.state_after == rules.PENDING:
        queue.enqueue(
            db,
            kind="consent.send_confirmation",
            workspace_id=principal.workspace_id,
            payload={"profile_id": profile.id, "topic": body.topic, "consent_record_id": entry.id},
            dedupe_key=f"confirm:{principal.workspace_id}:{profile.id}:{entry.id}",
            now=now,
        )
    db.commit()
    return DoubleOptInStarted(
        profile_id=profile.id, state=entry.state_after, confirm_url=links.confirm_url(runtime, target)
    )
