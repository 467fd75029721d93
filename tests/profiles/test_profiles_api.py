"""The profiles API: by id or identifier, search, timeline, traits with history, merges, GDPR, scopes, R20."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.accounts import service as accounts_service
from rapport.app import wire_runtime
from rapport.collect.importer import import_event_rows
from rapport.models import AuditEntry, Suppression
from rapport.process import traits_service
from rapport.runtime import Runtime
from tests.collect.processing_support import append, at, live_profiles, process
from tests.support.tenants import Tenant

CANARY_EMAIL = "canary.person@example.org"


def _seed(runtime: Runtime, tenant: Tenant) -> dict[str, int]:
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {
            "type": "page",
            "anonymousId": "a-1",
            "name": "Home",
            "timestamp": at(0),
            "context": {"channel": "web"},
        },
        {
            "type": "identify",
            "userId": "u-1",
            "anonymousId": "a-1",
            "timestamp": at(1),
            "traits": {"email": CANARY_EMAIL, "name": "Ann Lee", "phone": "07911 123456", "plan": "free"},
        },
        {
            "type": "track",
            "userId": "u-1",
            "event": "Order Completed",
            "timestamp": at(2),
            "properties": {"revenue": 20},
            "context": {"channel": "store"},
        },
        {"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}, "timestamp": at(3)},
        {
            "type": "track",
            "userId": "u-1",
            "event": "Order Completed",
            "timestamp": at(4),
            "context": {"channel": "web"},
        },
        {
            "type": "identify",
            "userId": "u-2",
            "traits": {"email": "other@example.org", "name": "Bo"},
            "timestamp": at(5),
        },
        {"type": "track", "userId": "u-2", "event": "Viewed", "timestamp": at(6)},
    )
    process(runtime)
    ann, bo = live_profiles(runtime, ws)
    return {"ann": ann.id, "bo": bo.id}


def _key(runtime: Runtime, tenant: Tenant, scopes: list[str]) -> dict[str, str]:
    with runtime.sessions() as db:
        issued = accounts_service.create_key(
            db, workspace_id=tenant.workspace_id, kind="secret", name="k", scopes=scopes, actor="test"
        )
        db.commit()
    return {"Authorization": f"Bearer {issued.plain}"}


def test_get_by_id_and_by_any_identifier(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    ids = _seed(runtime, tenant)
    h = tenant.secret_headers
    body = client.get(f"/api/v1/profiles/{ids['ann']}", headers=h).json()
    assert body["id"] == ids["ann"] and body["email"] == CANARY_EMAIL and body["name"] == "Ann Lee"
    assert body["traits"]["plan"] == "pro" and body["phone"] == "+447911123456"
    assert {(i["kind"], i["value"]) for i in body["identities"]} == {
        ("anonymous_id", "a-1"),
        ("user_id", "u-1"),
        ("email", CANARY_EMAIL),
        ("phone", "+447911123456"),
    }
    for kind, value in [
        ("email", " Canary.Person@EXAMPLE.org"),
        ("user_id", "u-1"),
        ("anonymous_id", "a-1"),
        ("phone", "+44 7911 123456"),
    ]:
        got = client.get("/api/v1/profiles/lookup", params={"kind": kind, "value": value}, headers=h)
        assert got.status_code == 200 and got.json()["id"] == ids["ann"], (kind, got.text)
    missing = client.get("/api/v1/profiles/lookup", params={"kind": "user_id", "value": "nobody"}, headers=h)
    assert missing.status_code == 404
    bad = client.get("/api/v1/profiles/lookup", params={"kind": "shoe_size", "value": "9"}, headers=h)
    assert bad.status_code == 400
    assert client.get("/api/v1/profiles/999999", headers=h).status_code == 404


def test_search_by_email_phone_and_name(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    ids = _seed(runtime, tenant)
    h = tenant.secret_headers

    def found(**params: Any) -> list[int]:
        answer = client.get("/api/v1/profiles", params=params, headers=h)
        assert answer.status_code == 200, answer.text
        return [p["id"] for p in answer.json()]

    assert found(email="CANARY.person@example.org") == [ids["ann"]]
    assert found(phone="07911 123456") == [ids["ann"]]
    assert found(name="ann") == [ids["ann"]]
    assert found(name="LEE") == found(q="lee") == [ids["ann"]]  # a surname: any word of the name
    assert found(name="ee") == []  # a word's start, not any part of it
    assert found(q="bo") == [ids["bo"]]
    assert found(q="%") == []
    assert found() == [ids["ann"], ids["bo"]]
    assert found(limit=1, offset=1) == [ids["bo"]]


def test_timeline_is_paginated_and_filtered(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    ids = _seed(runtime, tenant)
    h = tenant.secret_headers
    url = f"/api/v1/profiles/{ids['ann']}/events"

    def names(**params: Any) -> list[tuple[str, str | None]]:
        answer = client.get(url, params=params, headers=h)
        assert answer.status_code == 200, answer.text
        return [(e["type"], e["event"]) for e in answer.json()]

    assert names() == [
        ("track", "Order Completed"),
        ("identify", None),
        ("track", "Order Completed"),
        ("identify", None),
        ("page", "Home"),
    ]
    assert names(limit=2, offset=1) == [("identify", None), ("track", "Order Completed")]
    assert names(type="track") == [("track", "Order Completed")] * 2
    assert names(type=["page", "track"]) == [
        ("track", "Order Completed"),
        ("track", "Order Completed"),
        ("page", "Home"),
    ]
    assert names(channel="store") == [("track", "Order Completed")]
    assert names(since=at(1), until=at(3)) == [("track", "Order Completed"), ("identify", None)]
    assert names(event="Order Completed", channel="web") == [("track", "Order Completed")]


def test_traits_with_history(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    ids = _seed(runtime, tenant)
    h = tenant.secret_headers
    traits = client.get(f"/api/v1/profiles/{ids['ann']}/traits", headers=h).json()
    assert traits["traits"]["plan"] == "pro" and traits["trait_times"]["plan"].startswith(at(3)[:19])
    changes = client.get(f"/api/v1/profiles/{ids['ann']}/traits/history", params={"name": "plan"}, headers=h)
    assert [(c["previous"], c["value"]) for c in changes.json()] == [("free", "pro"), (None, "free")]


def test_merges_are_visible_and_merged_ids_answer_with_the_survivor(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    ids = _seed(runtime, tenant)
    append(
        runtime,
        tenant.workspace_id,
        {"type": "alias", "previousId": "u-2", "userId": "u-1", "timestamp": at(9)},
    )
    process(runtime)
    h = tenant.secret_headers
    survivor = client.get(f"/api/v1/profiles/{ids['ann']}", headers=h).json()
    assert [(m["survivor_id"], m["merged_id"], m["reason"]) for m in survivor["merges"]] == [
        (ids["ann"], ids["bo"], "identifier:alias")
    ]
    via_old = client.get(f"/api/v1/profiles/{ids['bo']}", headers=h).json()
    assert via_old["id"] == ids["ann"] and via_old["requested_id"] == ids["bo"]
    timeline = client.get(f"/api/v1/profiles/{ids['ann']}/events", params={"limit": 100}, headers=h).json()
    assert len(timeline) == 8  # 5 of Ann's, 2 of Bo's, the alias
    assert client.get("/api/v1/profiles", params={"q": "other@"}, headers=h).json() == []


def test_export_gives_every_row_and_is_audited_without_personal_data(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    ids = _seed(runtime, tenant)
    answer = client.get(f"/api/v1/profiles/{ids['ann']}/export", headers=tenant.secret_headers)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["profile"]["id"] == ids["ann"] and data["profile"]["email"] == CANARY_EMAIL
    assert len(data["events"]) == 5 and len(data["identities"]) == 4
    assert {t["name"] for t in data["trait_history"]} >= {"plan", "email", "name", "phone"}
    with runtime.read_sessions() as db:
        [entry] = db.scalars(select(AuditEntry).where(AuditEntry.action == "profile.exported")).all()
    assert entry.target_id == str(ids["ann"]) and entry.details["events"] == 5
    assert CANARY_EMAIL not in str(entry.details) and "u-1" not in str(entry.details)


def test_erase_deletes_everything_suppresses_and_is_audited(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    ids = _seed(runtime, tenant)
    h = tenant.secret_headers
    answer = client.delete(f"/api/v1/profiles/{ids['ann']}", headers=h)
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"]["events"] == 5 and answer.json()["suppressed"] == 4
    assert client.get(f"/api/v1/profiles/{ids['ann']}", headers=h).status_code == 404
    assert client.get(f"/api/v1/profiles/{ids['bo']}", headers=h).status_code == 200
    with runtime.read_sessions() as db:
        hashes = db.scalars(select(Suppression.value_hash)).all()
        [entry] = db.scalars(select(AuditEntry).where(AuditEntry.action == "profile.erased")).all()
    assert len(hashes) == 4 and all(len(x) == 64 for x in hashes)
    assert CANARY_EMAIL not in str(entry.details) and entry.target_id == str(ids["ann"])
    # SDK traffic after erasure does not bring the person back.
    append(runtime, tenant.workspace_id, {"type": "identify", "userId": "u-1", "traits": {"plan": "x"}})
    process(runtime)
    assert [p.id for p in live_profiles(runtime, tenant.workspace_id)] == [ids["bo"]]


@pytest.mark.parametrize(
    ("method", "path", "scope", "allowed"),
    [
        ("GET", "/api/v1/profiles/{id}", "profiles:read", True),
        ("GET", "/api/v1/profiles/{id}/export", "profiles:read", False),
        ("DELETE", "/api/v1/profiles/{id}", "profiles:read", False),
        ("GET", "/api/v1/profiles/{id}", "segments:read", False),
        ("GET", "/api/v1/profiles/{id}/export", "profiles:write", True),
    ],
)
def test_scopes(
    client: TestClient, runtime: Runtime, tenant: Tenant, method: str, path: str, scope: str, allowed: bool
) -> None:
    ids = _seed(runtime, tenant)
    answer = client.request(method, path.format(id=ids["ann"]), headers=_key(runtime, tenant, [scope]))
    assert answer.status_code == (200 if allowed else 403), answer.text
    refused = client.get(path.format(id=ids["ann"]), headers=tenant.write_headers)
    assert refused.status_code in (401, 403)


def test_other_workspace_gets_404_on_every_profile_route(
    client: TestClient, runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    ids = _seed(runtime, tenant)
    theirs = other_tenant.secret_headers
    for method, path in [
        ("GET", "/api/v1/profiles/{id}"),
        ("GET", "/api/v1/profiles/{id}/events"),
        ("GET", "/api/v1/profiles/{id}/traits"),
        ("GET", "/api/v1/profiles/{id}/traits/history"),
        ("GET", "/api/v1/profiles/{id}/export"),
        ("DELETE", "/api/v1/profiles/{id}"),
    ]:
        answer = client.request(method, path.format(id=ids["ann"]), headers=theirs)
        assert answer.status_code == 404, (path, answer.text)
        assert CANARY_EMAIL not in answer.text
    lookup = client.get(
        "/api/v1/profiles/lookup", params={"kind": "email", "value": CANARY_EMAIL}, headers=theirs
    )
    assert lookup.status_code == 404
    assert client.get("/api/v1/profiles", params={"q": "canary"}, headers=theirs).json() == []
    assert client.get(f"/api/v1/profiles/{ids['ann']}", headers=tenant.secret_headers).status_code == 200


def test_the_profile_shows_computed_traits_exact_at_read_time(
    runtime: Runtime, client: TestClient, tenant: Tenant
) -> None:
    wire_runtime(runtime)
    now = datetime.now(UTC)
    with runtime.sessions() as db:
        traits_service.ensure_builtins(db, workspace_id=tenant.workspace_id, now=now)
        db.commit()
    import_event_rows(
        runtime,
        workspace_id=tenant.workspace_id,
        rows=[
            {
                "type": "track",
                "event": "order_completed",
                "userId": "buyer",
                "messageId": f"o{i}",
                "timestamp": now.isoformat(),
                "properties": {"total": total},
            }
            for i, total in enumerate((20.0, 30.5))
        ],
    )
    found = client.get(
        "/api/v1/profiles/lookup", params={"kind": "user_id", "value": "buyer"}, headers=tenant.secret_headers
    )
    assert found.status_code == 200, found.text
    computed = found.json()["computed"]
    assert computed["total_orders"] == 2
    assert computed["total_spend"] == 50.5
    assert not any(key.startswith("_") for key in computed)
