"""Consent statements inside tracked events reach the consent log when the processor applies the events
(R16: a write key withdraws, it never grants), with the event's source, id and IP as proof."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.collect.processor import Processor
from rapport.models import Event
from rapport.runtime import Runtime
from tests.collect.ingest_support import basic
from tests.consent.test_consent_api import _consent, _grant_email, _state
from tests.support.tenants import Tenant


def _process(runtime: Runtime) -> Event:
    assert Processor(runtime).drain() >= 1
    with runtime.read_sessions() as db:
        event = db.scalars(select(Event).order_by(Event.id.desc()).limit(1)).one()
        db.expunge(event)
        return event


def test_a_withdrawal_in_an_event_unsubscribes_the_profile_with_the_events_proof(
    client: TestClient, tenant: Tenant, profile_id: int, runtime: Runtime
) -> None:
    _grant_email(client, tenant, profile_id)
    assert _state(client, tenant, profile_id, "email") == "subscribed"
    body = {
        "userId": "ann",
        "event": "Preferences Saved",
        "properties": {"email_opt_in": False},
        "context": {"ip": "198.51.100.7"},
    }
    assert client.post("/v1/track", json=body, headers=basic(tenant.write_key)).status_code == 200
    event = _process(runtime)
    assert event.profile_id == profile_id
    assert _state(client, tenant, profile_id, "email") == "unsubscribed"
    [entry] = [e for e in _consent(client, tenant, profile_id)["log"] if e["action"] != "granted"]
    assert entry["channel"] == "email" and entry["state_after"] == "unsubscribed"
    assert (entry["source"], entry["actor"], entry["ip"]) == (
        f"event:{event.source}",
        f"event:{event.id}",
        "198.51.100.7",
    )
    assert entry["details"]["path"] == "properties.email_opt_in"


def test_a_grant_in_a_write_key_event_changes_nothing(
    client: TestClient, tenant: Tenant, profile_id: int, runtime: Runtime
) -> None:
    body = {"userId": "ann", "traits": {"email_opt_in": True}}
    assert client.post("/v1/identify", json=body, headers=basic(tenant.write_key)).status_code == 200
    event = _process(runtime)
    assert event.profile_id == profile_id
    assert _state(client, tenant, profile_id, "email") in (None, "never_asked")
    assert _consent(client, tenant, profile_id)["log"] == []
