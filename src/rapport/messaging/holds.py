"""Which campaigns' queued messages must wait (paused) or be dropped (cancelled) when a worker claims them.

The Deliverer asks once per claimed batch; campaign state lives with the campaigns (and, for the complaint
brake of R18, in the workspace setting ``paused_campaigns`` written by messaging/inbound.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from rapport.db.planner import one_of
from rapport.messaging import inbound
from rapport.models import Campaign, Workspace


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a campaign's messages are not sent now: ``cancel`` drops them, otherwise they wait."""

    reason: str
    cancel: bool = False


_STATUSES = select(Campaign.id, Campaign.status, Campaign.status_reason).where(
    Campaign.workspace_id == bindparam("ws"), one_of(Campaign.id, "ids")
)


def campaign_holds(db: Session, *, workspace: Workspace, campaign_ids: Collection[int]) -> dict[int, Hold]:
    """Return the holds on any of ``campaign_ids`` (campaigns not held are absent)."""
    holds: dict[int, Hold] = {}
    if not campaign_ids:
        return holds
    rows = db.execute(_STATUSES, {"ws": workspace.id, "ids": list(campaign_ids)}).all()
    for campaign_id, status, reason in rows:
        if status == "cancelled":
            holds[campaign_id] = Hold(f"campaign cancelled{': ' + reason if reason else ''}", cancel=True)
        elif status == "paused":
            holds[campaign_id] = Hold(f"campaign paused{': ' + reason if reason else ''}")
    for campaign_id in campaign_ids:
        if campaign_id not in holds and inbound.campaign_paused(workspace, campaign_id):
            holds[campaign_id] = Hold("campaign paused: complaints above 0.3%")
    return holds
