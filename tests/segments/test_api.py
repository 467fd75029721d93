"""/api/v1/segments over HTTP: CRUD, preview, members, CSV, errors and scopes, on both databases."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.tenants import Tenant


def _identify(client: TestClient, tenant: Tenant, user_id: str, traits: dict[str, object]) -> None:
    answer = client.post(
        "/v1/identify", json={"userId": user_id, "traits": traits}, headers=tenant.write_headers
    )
    assert answer.status_code == 200, answer.text
    client.app.state.worker.drain()  # type: ignore[attr-defined]


def test_segment_lifecycle(client: TestClient, tenant: Tenant) -> None:
    h = tenant.secret_headers
    _identify(client, tenant, "a", {"city": "Leeds", "name": "@risky"})
    _identify(client, tenant, "b", {"city": "York"})
    _identify(client, tenant, "c", {"city": "Hull"})

    preview = client.post("/api/v1/segments/preview", json={"text": 'city in ("Leeds","York")'}, headers=h)
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert (body["count"], len(body["sample"]), body["text"]) == (2, 2, 'city in ("Leeds", "York")')
    assert body["ast"]["root"]["type"] == "compare"

    created = client.post("/api/v1/segments", json={"name": "North", "text": 'city = "Leeds"'}, headers=h)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert created.json()["member_count"] == 1

    changed = client.patch(f"/api/v1/segments/{sid}", json={"text": 'city != "Hull"'}, headers=h)
    assert (changed.status_code, changed.json()["version"], changed.json()["member_count"]) == (200, 2, 2)

    members = client.get(f"/api/v1/segments/{sid}/members?limit=1&offset=1", headers=h)
    assert members.status_code == 200 and len(members.json()) == 1
    csv = client.get(f"/api/v1/segments/{sid}/members?format=csv", headers=h)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert len(lines) == 3 and ",'@risky," in lines[1]

    copy = client.post(f"/api/v1/segments/{sid}/duplicate", json={"name": "North 2"}, headers=h)
    assert copy.status_code == 201 and copy.json()["text"] == 'city != "Hull"'
    assert [s["name"] for s in client.get("/api/v1/segments", headers=h).json()] == ["North", "North 2"]

    archived = client.delete(f"/api/v1/segments/{sid}", headers=h)
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    assert [s["name"] for s in client.get("/api/v1/segments", headers=h).json()] == ["North 2"]
    assert client.get(f"/api/v1/segments/{sid}", headers=h).json()["archived_at"] is not None


def test_errors_name_line_and_column(client: TestClient, tenant: Tenant) -> None:
    _identify(client, tenant, "a", {"city": "Leeds", "total_spend": 3})
    answer = client.post(
        "/api/v1/segments/preview", json={"text": "city = \n  cty = 3"}, headers=tenant.secret_headers
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_segment"
    assert (error["details"]["line"], error["details"]["column"]) == (2, 3)
    both = client.post("/api/v1/segments/preview", json={}, headers=tenant.secret_headers)
    assert both.status_code == 400
    dup = {"name": "X", "text": "city is set"}
    assert client.post("/api/v1/segments", json=dup, headers=tenant.secret_headers).status_code == 201
    assert client.post("/api/v1/segments", json=dup, headers=tenant.secret_headers).status_code == 409


def test_write_key_is_refused(client: TestClient, tenant: Tenant) -> None:
    for method, path in (("GET", "/api/v1/segments"), ("POST", "/api/v1/segments/preview")):
        answer = client.request(method, path, json={"text": "city is set"}, headers=tenant.write_headers)
        assert answer.status_code == 403


def test_an_oversized_number_is_a_400_with_its_position_not_a_500(client: TestClient, tenant: Tenant) -> None:
    _identify(client, tenant, "a", {"city": "Leeds"})
    h = tenant.secret_headers
    text = "purchased at least 100000000000000000000 times in last 30 days"
    for path, body in (
        ("/api/v1/segments/preview", {"text": text}),
        ("/api/v1/segments", {"name": "Too many", "text": text}),
    ):
        answer = client.post(path, json=body, headers=h)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_segment"
        assert error["message"] == "line 1, column 20: a count must be at most 1,000,000,000"
        assert (error["details"]["line"], error["details"]["column"]) == (1, 20)
    root = {"type": "compare", "field": "total_spend", "op": ">", "value": 10**400}
    answer = client.post("/api/v1/segments/preview", json={"ast": {"version": 1, "root": root}}, headers=h)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["details"]["path"] == "root"
    assert "too large" in answer.json()["error"]["message"]
    assert client.get("/api/v1/segments", headers=h).json() == []
    fine = client.post(
        "/api/v1/segments/preview", json={"text": "purchased at most 1000000000 times"}, headers=h
    )
    assert (fine.status_code, fine.json()["count"]) == (200, 1)
