"""The process API: computed-trait CRUD with scopes, score runs (idempotent), lifestyle upload."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.tenants import Tenant


def test_computed_traits_crud(client: TestClient, tenant: Tenant) -> None:
    h = tenant.secret_headers
    listed = client.get("/api/v1/computed-traits", headers=h)
    assert listed.status_code == 200
    names = {t["name"] for t in listed.json()}
    assert {"total_orders", "total_spend", "favourite_store", "tenure_days", "last_seen_sms"} <= names
    body = {
        "name": "big_orders_90d",
        "event": "order_completed",
        "aggregation": "count",
        "conditions": [{"property": "total", "op": ">", "value": 100}],
        "window_days": 90,
    }
    made = client.post("/api/v1/computed-traits", json=body, headers=h)
    assert made.status_code == 201, made.text
    trait_id = made.json()["id"]
    assert client.post("/api/v1/computed-traits", json=body, headers=h).status_code == 409
    bad = client.post("/api/v1/computed-traits", json={**body, "name": "x1", "aggregation": "sum"}, headers=h)
    assert bad.status_code in (400, 422)
    changed = client.patch(f"/api/v1/computed-traits/{trait_id}", json={"window_days": 30}, headers=h)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert client.get(f"/api/v1/computed-traits/{trait_id}", headers=h).json()["window_days"] == 30
    gone = client.delete(f"/api/v1/computed-traits/{trait_id}", headers=h)
    assert gone.status_code == 200 and gone.json()["archived_at"] is not None
    assert "big_orders_90d" not in {
        t["name"] for t in client.get("/api/v1/computed-traits", headers=h).json()
    }


def test_computed_traits_need_settings_scope(client: TestClient, tenant: Tenant) -> None:
    made = client.post(
        "/api/v1/keys",
        json={"kind": "secret", "name": "reader", "scopes": ["profiles:read"]},
        headers=tenant.secret_headers,
    )
    assert made.status_code == 201, made.text
    reader = {"Authorization": f"Bearer {made.json()['key']}"}
    assert client.get("/api/v1/computed-traits", headers=reader).status_code == 200
    body = {"name": "n1", "event": "x", "aggregation": "count"}
    assert client.post("/api/v1/computed-traits", json=body, headers=reader).status_code == 403


def test_score_run_is_idempotent_and_listed(client: TestClient, tenant: Tenant) -> None:
    h = {**tenant.secret_headers, "Idempotency-Key": "run-1"}
    first = client.post("/api/v1/scores/run", json={"kinds": ["rfm"]}, headers=h)
    again = client.post("/api/v1/scores/run", json={"kinds": ["rfm"]}, headers=h)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() and again.headers.get("Idempotent-Replayed") == "true"
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    runs = client.get("/api/v1/scores/runs", headers=tenant.secret_headers).json()
    assert [r["kind"] for r in runs] == ["rfm"] and runs[0]["status"] == "done"
    one = client.get(f"/api/v1/scores/runs/{runs[0]['id']}", headers=tenant.secret_headers)
    assert one.status_code == 200 and "model" not in one.json()


def test_lifestyle_upload(client: TestClient, tenant: Tenant) -> None:
    csv = b"postcode,group\nLS1,Leeds Centre\nLS,Leeds\n"
    up = client.post(
        "/api/v1/lifestyle-tables",
        files={"file": ("t.csv", csv, "text/csv")},
        data={"name": "demo"},
        headers=tenant.secret_headers,
    )
    assert up.status_code == 201, up.text
    assert up.json()["columns"] == ["group"] and up.json()["row_count"] == 2
    listed = client.get("/api/v1/lifestyle-tables", headers=tenant.secret_headers).json()
    assert [t["name"] for t in listed] == ["demo"]
    bad = client.post(
        "/api/v1/lifestyle-tables",
        files={"file": ("t.csv", b"only\n", "text/csv")},
        data={"name": "x"},
        headers=tenant.secret_headers,
    )
    assert bad.status_code in (400, 422)
    for body, reason in [
        (
            b"postcode,x\nA," + b"a" * 140_000 + b"\n",
            "not valid CSV near line 2: field larger than field limit",
        ),
        ("postcode,group\nLS1,Café\n".encode("cp1252"), "not UTF-8 text"),
    ]:
        refused = client.post(
            "/api/v1/lifestyle-tables",
            files={"file": ("t.csv", body, "text/csv")},
            data={"name": "odd"},
            headers=tenant.secret_headers,
        )
        assert refused.status_code == 400 and reason in refused.json()["error"]["message"], refused.text
    assert (
        client.delete(
            f"/api/v1/lifestyle-tables/{up.json()['id']}", headers=tenant.secret_headers
        ).status_code
        == 204
    )
