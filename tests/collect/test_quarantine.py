"""R4: bad events are quarantined, not dropped; listed in the answer; replayable by API and CLI."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from rapport.accounts import service as accounts_service
from rapport.cli import app as cli_app
from rapport.collect import quarantine as quarantine_service
from rapport.models import AuditEntry
from rapport.runtime import Runtime
from tests.collect.ingest_support import basic, event_count, events, quarantined, track
from tests.support.tenants import Tenant

BAD = {
    17: {"type": "track", "messageId": "bad-17", "event": "No Identity"},
    42: {"type": "track", "messageId": "bad-42", "userId": "u42", "event": "E", "properties": "oops"},
    99: {"type": "teleport", "messageId": "bad-99", "userId": "u99"},
}


def _batch_of_100() -> list[dict[str, object]]:
    return [BAD.get(i, track(f"ok-{i}", user=f"u{i}")) for i in range(100)]


def _send(client: TestClient, tenant: Tenant) -> dict[str, object]:
    answer = client.post("/v1/batch", json={"batch": _batch_of_100()}, headers=basic(tenant.write_key))
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_batch_of_100_with_3_malformed_stores_97_and_lists_3(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    body = _send(client, tenant)
    assert body["success"] is True
    assert body["accepted"] == 97
    listed = body["quarantined"]
    assert isinstance(listed, list)
    assert [(q["index"], q["messageId"]) for q in listed] == [(17, "bad-17"), (42, "bad-42"), (99, "bad-99")]
    reasons = {q["index"]: q["reason"] for q in listed}
    assert reasons[17] == "userId: userId or anonymousId is required"
    assert reasons[42] == "properties: must be an object"
    assert reasons[99].startswith("type: must be one of")
    assert event_count(runtime, tenant.workspace_id) == 97
    rows = quarantined(runtime, tenant.workspace_id)
    assert [r.id for r in rows] == [q["id"] for q in listed]
    assert [json.loads(r.payload) for r in rows] == [BAD[17], BAD[42], BAD[99]]
    assert all(r.replayed_at is None for r in rows)


def test_list_fix_and_replay_through_the_api(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    _send(client, tenant)
    headers = tenant.secret_headers
    listing = client.get("/api/v1/quarantine", headers=headers)
    assert listing.status_code == 200
    items = listing.json()
    assert [i["payload"]["messageId"] for i in items] == ["bad-99", "bad-42", "bad-17"]  # newest first
    assert items[0]["details"]["errors"][0]["field"] == "type"

    # Replaying unchanged payloads stores nothing and says why.
    summary = client.post("/api/v1/quarantine/replay", json={}, headers=headers).json()
    assert (summary["stored"], summary["invalid"]) == (0, 3)

    # Fix two payloads, then replay everything open.
    by_mid = {i["payload"]["messageId"]: i["id"] for i in items}
    fixed = {**BAD[17], "userId": "u17"}
    answer = client.put(
        f"/api/v1/quarantine/{by_mid['bad-17']}/payload", json={"payload": fixed}, headers=headers
    )
    assert answer.status_code == 200
    assert answer.json()["payload"] == fixed
    fixed42 = {**BAD[42], "properties": {"oops": True}}
    client.put(f"/api/v1/quarantine/{by_mid['bad-42']}/payload", json={"payload": fixed42}, headers=headers)
    summary = client.post("/api/v1/quarantine/replay", json={}, headers=headers).json()
    assert (summary["stored"], summary["invalid"]) == (2, 1)
    assert event_count(runtime, tenant.workspace_id) == 99
    stored = {e.message_id: e for e in events(runtime, tenant.workspace_id)}
    assert stored["bad-17"].user_id == "u17"
    assert stored["bad-42"].properties == {"oops": True}
    assert stored["bad-17"].extra["_replayed_from_quarantine"] == by_mid["bad-17"]

    # Replayed ones leave the open list, stay visible with include_replayed, and cannot be edited.
    open_items = client.get("/api/v1/quarantine", headers=headers).json()
    assert [i["payload"]["messageId"] for i in open_items] == ["bad-99"]
    everything = client.get("/api/v1/quarantine?include_replayed=true", headers=headers).json()
    assert len(everything) == 3
    replayed = next(i for i in everything if i["id"] == by_mid["bad-17"])
    assert replayed["replay_result"] == "stored as bad-17"
    again = client.put(
        f"/api/v1/quarantine/{by_mid['bad-17']}/payload", json={"payload": fixed}, headers=headers
    )
    assert again.status_code == 400
    one = client.post(f"/api/v1/quarantine/{by_mid['bad-17']}/replay", headers=headers).json()
    assert one["skipped"] == 1
    assert event_count(runtime, tenant.workspace_id) == 99
    with runtime.read_sessions() as db:
        actions = set(
            db.scalars(select(AuditEntry.action).where(AuditEntry.workspace_id == tenant.workspace_id))
        )
    assert {"quarantine.payload_edited", "quarantine.replayed"} <= actions


def test_replay_keeps_the_batch_envelope_and_receive_time(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    bad = {"type": "track", "messageId": "late", "event": "E", "timestamp": "2026-01-01T10:00:00Z"}
    body = {
        "batch": [bad],
        "sentAt": "2026-01-01T10:00:05Z",
        "context": {"library": {"name": "analytics.js"}},
    }
    client.post("/v1/batch", json=body, headers=basic(tenant.write_key))
    (row,) = quarantined(runtime, tenant.workspace_id)
    client.put(
        f"/api/v1/quarantine/{row.id}/payload",
        json={"payload": {**bad, "anonymousId": "a"}},
        headers=tenant.secret_headers,
    )
    client.post(f"/api/v1/quarantine/{row.id}/replay", headers=tenant.secret_headers)
    (event,) = events(runtime, tenant.workspace_id)
    assert event.received_at == row.received_at
    assert (row.received_at - event.timestamp).total_seconds() == pytest.approx(5, abs=0.001)
    assert event.channel == "web"


def test_quarantine_routes_need_scopes(
    client: TestClient, runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    _send(client, tenant)
    (first, *_rest) = quarantined(runtime, tenant.workspace_id)
    for method, path in (
        ("GET", "/api/v1/quarantine"),
        ("GET", f"/api/v1/quarantine/{first.id}"),
        ("POST", "/api/v1/quarantine/replay"),
        ("POST", f"/api/v1/quarantine/{first.id}/replay"),
    ):
        answer = client.request(method, path, headers=basic(tenant.write_key), json={})
        assert answer.status_code == 403, (method, path)
        assert answer.json()["error"]["code"] == "write_key_not_allowed"
    with runtime.sessions() as db:
        reader = accounts_service.create_key(
            db, workspace_id=tenant.workspace_id, kind="secret", name="r", scopes=["events:read"], actor="t"
        ).plain
        db.commit()
    bearer = {"Authorization": f"Bearer {reader}"}
    assert client.get("/api/v1/quarantine", headers=bearer).status_code == 200
    denied = client.post("/api/v1/quarantine/replay", json={}, headers=bearer)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "missing_scope"
    # Another workspace sees none of it (R20).
    assert client.get("/api/v1/quarantine", headers=other_tenant.secret_headers).json() == []
    assert (
        client.get(f"/api/v1/quarantine/{first.id}", headers=other_tenant.secret_headers).status_code == 404
    )
    assert (
        client.post(f"/api/v1/quarantine/{first.id}/replay", headers=other_tenant.secret_headers).status_code
        == 404
    )


def test_cli_lists_and_replays(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    _send(client, tenant)
    runner = CliRunner()
    env = {"RAPPORT_DATABASE_URL": runtime.settings.database_url, "COLUMNS": "200"}
    listing = runner.invoke(cli_app, ["events", "quarantine", "list", "-w", tenant.slug], env=env)
    assert listing.exit_code == 0, listing.output
    assert "bad-17" in listing.output and "bad-99" in listing.output
    assert "3 shown" in listing.output

    rows = quarantined(runtime, tenant.workspace_id)
    with runtime.sessions() as db:
        quarantine_service.update_payload(
            db,
            workspace_id=tenant.workspace_id,
            quarantine_id=rows[0].id,
            payload={**BAD[17], "userId": "x"},
            actor="t",
        )
        db.commit()
    replay = runner.invoke(
        cli_app, ["events", "quarantine", "replay", str(rows[0].id), "-w", tenant.slug], env=env
    )
    assert replay.exit_code == 0, replay.output
    assert "stored 1, still invalid 0" in replay.output
    rest = runner.invoke(cli_app, ["events", "quarantine", "replay", "-w", tenant.slug], env=env)
    assert rest.exit_code == 1  # two are still invalid
    assert "stored 0, still invalid 2" in rest.output
    show = runner.invoke(
        cli_app, ["events", "quarantine", "show", str(rows[1].id), "-w", tenant.slug], env=env
    )
    assert show.exit_code == 0
    assert "bad-42" in show.output
    assert event_count(runtime, tenant.workspace_id) == 98
