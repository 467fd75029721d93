"""Campaign fixtures: the messaging ones (a real SMTP sink and the email channel pointed at it), and
helpers to build audiences and run the worker."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.models import CampaignRecipient, Event, Message
from rapport.runtime import Runtime
from tests.messaging.conftest import deliverer, email_channel, settings, sink  # noqa: F401  (fixtures)
from tests.support.tenants import Tenant


def run_worker(app: FastAPI, *, rounds: int = 60) -> int:
    """Run the app's worker ticks (processor, deliverer, campaigns, …) until nothing is left to do."""
    worker = app.state.worker
    total = 0
    for _ in range(rounds):
        done = worker.run_ticks()
        total += done
        if not done:
            break
    return total


def make_segment(client: TestClient, tenant: Tenant, name: str, text: str) -> int:
    """Save a segment through the API and return its id."""
    response = client.post(
        "/api/v1/segments", json={"name": name, "text": text}, headers=tenant.secret_headers
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def make_campaign(client: TestClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    """Create a campaign through the API and return it."""
    response = client.post("/api/v1/campaigns", json=body, headers=tenant.secret_headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def call(client: TestClient, tenant: Tenant, method: str, path: str, **kwargs: Any) -> Any:
    """Call the API with the tenant's secret key, expect 2xx, return the JSON."""
    response = client.request(method, path, headers=tenant.secret_headers, **kwargs)
    assert response.status_code < 300, response.text
    return response.json()


def recipients(runtime: Runtime, campaign_id: int) -> dict[int, CampaignRecipient]:
    """Return a campaign's entries by profile id."""
    with runtime.read_sessions() as db:
        rows = list(db.scalars(select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id)))
        for row in rows:
            db.expunge(row)
    return {row.profile_id: row for row in rows}


def event_names(runtime: Runtime, profile_id: int) -> list[str]:
    """Return the names of a profile's events, oldest first."""
    with runtime.read_sessions() as db:
        names = db.scalars(select(Event.event).where(Event.profile_id == profile_id).order_by(Event.id))
        return [name or "" for name in names]


def campaign_messages(runtime: Runtime, campaign_id: int) -> list[Message]:
    """Return a campaign's outbox rows, oldest first (detached)."""
    with runtime.read_sessions() as db:
        rows = list(
            db.scalars(select(Message).where(Message.campaign_id == campaign_id).order_by(Message.id))
        )
        for row in rows:
            db.expunge(row)
    return rows
