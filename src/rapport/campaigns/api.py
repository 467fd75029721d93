"""HTTP routes under /api/v1/campaigns: CRUD, launch/pause/resume/cancel/archive, audience estimate,
results, recipients, test send, winner decision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from rapport.accounts.principal import Principal
from rapport.api.deps import DbSession, Offset, ReadDbSession, get_runtime, require_scope
from rapport.campaigns import measure, service, testsend
from rapport.campaigns import repository as repo
from rapport.campaigns.schemas import (
    AudienceEstimate,
    CampaignCreate,
    CampaignRead,
    CampaignStats,
    CampaignUpdate,
    TestSend,
    TestSendResult,
)
from rapport.errors import Conflict, NotFound
from rapport.models import Workspace
from rapport.runtime import Runtime

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])

Reader = Annotated[Principal, Depends(require_scope("campaigns:read"))]
Writer = Annotated[Principal, Depends(require_scope("campaigns:write"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class DuplicateBody(BaseModel):
    """The name of the copy (default: "<name> (copy)")."""

    name: str | None = Field(default=None, min_length=1, max_length=200)


class RecipientRead(BaseModel):
    """One entry of a profile into the campaign."""

    profile_id: int
    entry_key: str
    variant: str
    state: str
    entered_at: str


def _workspace(db: DbSession | ReadDbSession, workspace_id: int) -> Workspace:
    workspace = db.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("workspace not found")
    return workspace


@router.get("", response_model=list[CampaignRead])
def list_campaigns(
    principal: Reader,
    db: ReadDbSession,
    kind: Literal["broadcast", "triggered", "date_relative"] | None = None,
    include_archived: bool = False,
) -> object:
    """List the workspace's campaigns, newest first."""
    campaigns = service.list_campaigns(
        db, workspace_id=principal.workspace_id, kind=kind, include_archived=include_archived
    )
    return [service.read(db, c) for c in campaigns]


@router.post("", response_model=CampaignRead, status_code=201)
def create_campaign(body: CampaignCreate, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
    """Save a draft campaign (400 with the field when something does not fit)."""
    campaign = service.create_campaign(
        db, workspace_id=principal.workspace_id, data=body, actor=principal.actor, now=runtime.clock.now()
    )
    db.commit()
    return service.read(db, campaign)


@router.get("/{campaign_id}", response_model=CampaignRead)
def read_campaign(campaign_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one campaign with its variants."""
    return service.read(
        db, service.get_campaign(db, workspace_id=principal.workspace_id, campaign_id=campaign_id)
    )


@router.patch("/{campaign_id}", response_model=CampaignRead)
def update_campaign(
    campaign_id: int, body: CampaignUpdate, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    """Change a draft or scheduled campaign (a running one can only be renamed)."""
    campaign = service.update_campaign(
        db,
        workspace_id=principal.workspace_id,
        campaign_id=campaign_id,
        data=body,
        actor=principal.actor,
        now=runtime.clock.now(),
    )
    db.commit()
    return service.read(db, campaign)


def _lifecycle_route(action: service.Action) -> Callable[..., object]:
    def endpoint(campaign_id: int, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
        campaign = action.do(
            db,
            workspace_id=principal.workspace_id,
            campaign_id=campaign_id,
            actor=principal.actor,
            now=runtime.clock.now(),
        )
        db.commit()
        return service.read(db, campaign)

    endpoint.__doc__ = action.summary
    return endpoint


for _verb, _action in service.ACTIONS.items():
    router.add_api_route(
        f"/{{campaign_id}}/{_verb}",
        _lifecycle_route(_action),
        methods=["POST"],
        response_model=CampaignRead,
        name=f"{_verb}_campaign",
    )


@router.post("/{campaign_id}/duplicate", response_model=CampaignRead, status_code=201)
def duplicate_campaign(
    campaign_id: int, body: DuplicateBody, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    """Copy a campaign into a new draft."""
    campaign = service.duplicate_campaign(
        db,
        workspace_id=principal.workspace_id,
        campaign_id=campaign_id,
        name=body.name,
        actor=principal.actor,
        now=runtime.clock.now(),
    )
    db.commit()
    return service.read(db, campaign)


@router.get("/{campaign_id}/audience", response_model=AudienceEstimate)
def estimate_audience(campaign_id: int, principal: Reader, db: ReadDbSession, runtime: RuntimeDep) -> object:
    """Who a broadcast would reach if sent now: size, control group, and who cannot be reached and why."""
    campaign = service.get_campaign(db, workspace_id=principal.workspace_id, campaign_id=campaign_id)
    return service.estimate_audience(
        db, workspace=_workspace(db, principal.workspace_id), campaign=campaign, now=runtime.clock.now()
    )


@router.get("/{campaign_id}/stats", response_model=CampaignStats)
def campaign_stats(campaign_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Results per arm and for the control group: sends, engagement, conversions, revenue, lift with
    95 % intervals, and the cost and ROI."""
    campaign = service.get_campaign(db, workspace_id=principal.workspace_id, campaign_id=campaign_id)
    return measure.campaign_stats(db, campaign=campaign)


@router.get("/{campaign_id}/recipients", response_model=list[RecipientRead])
def list_recipients(
    campaign_id: int,
    principal: Reader,
    db: ReadDbSession,
    variant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> object:
    """A page of the campaign's entries (who was assigned which arm, and what became of it)."""
    campaign = service.get_campaign(db, workspace_id=principal.workspace_id, campaign_id=campaign_id)
    rows = repo.list_recipients(db, campaign_id=campaign.id, limit=limit, offset=offset, variant=variant)
    return [
        RecipientRead(
            profile_id=r.profile_id,
            entry_key=r.entry_key,
            variant=r.variant,
            state=r.state,
            entered_at=r.entered_at.isoformat(),
        )
        for r in rows
    ]


@router.post("/{campaign_id}/test", response_model=TestSendResult)
def test_send(
    campaign_id: int, body: TestSend, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    """Send each variant once to seed addresses (marked [TEST]; not counted in results)."""
    campaign = service.get_campaign(db, workspace_id=principal.workspace_id, campaign_id=campaign_id)
    results = testsend.do_test_send(
        db,
        runtime=runtime,
        workspace=_workspace(db, principal.workspace_id),
        campaign=campaign,
        addresses=body.addresses,
        profile_id=body.profile_id,
        variants=body.variants,
        now=runtime.clock.now(),
    )
    return TestSendResult(results=results)


@router.post("/{campaign_id}/decide", response_model=CampaignRead)
def decide_winner(campaign_id: int, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
    """End the A/B/n test phase now: pick the winner and (when configured) send it to the rest."""
    campaign = repo.lock_campaign(db, workspace_id=principal.workspace_id, campaign_id=campaign_id)
    if campaign is None:
        raise NotFound("campaign not found")
    if campaign.status not in {service.TESTING, service.ACTIVE, service.SENDING}:
        raise Conflict(f"a {campaign.status} campaign has no test phase to end")
    if measure.decide_winner(db, campaign=campaign, now=runtime.clock.now()) is None:
        raise Conflict("the winner is decided already")
    db.commit()
    return service.read(db, campaign)
