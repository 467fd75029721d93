"""R19: write keys only append events; secret keys are scoped, revocable, stored hashed, never in URLs."""

from __future__ import annotations

import base64

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.kit.tokens import hash_token
from rapport.models import ApiKey
from rapport.runtime import Runtime
from tests.support.routes import api_operations, fill_path
from tests.support.tenants import Tenant

#: Routes anyone may call, and why.
PUBLIC = {
    "/healthz": "load balancers",
    "/": "redirects to the UI",
}
INGEST_PREFIX = "/v1/"


def _protected_api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every documented operation except the public ones and the ingest routes."""
    return [
        (method, path)
        for method, path in api_operations(app)
        if path not in PUBLIC and not path.startswith(INGEST_PREFIX)
    ]


def test_write_key_is_refused_on_every_non_ingest_route(
    app: FastAPI, client: TestClient, tenant: Tenant
) -> None:
    routes = _protected_api_routes(app)
    assert len(routes) >= 5
    basic = tenant.write_headers
    bearer = {"Authorization": f"Bearer {tenant.write_key}"}
    for method, path in routes:
        for headers in (basic, bearer):
            answer = client.request(method, fill_path(path), headers=headers, json={})
            assert answer.status_code in {401, 403}, (method, path, answer.status_code, answer.text)
            assert answer.json()["error"]["code"] in {"write_key_not_allowed", "unauthenticated"}


def test_every_protected_route_refuses_anonymous_callers(app: FastAPI, client: TestClient) -> None:
    for method, path in _protected_api_routes(app):
        answer = client.request(method, fill_path(path), json={})
        assert answer.status_code == 401, (method, path, answer.status_code)


def test_secret_key_scopes_are_enforced(client: TestClient, tenant: Tenant) -> None:
    made = client.post(
        "/api/v1/keys",
        json={"kind": "secret", "name": "reader", "scopes": ["profiles:read"]},
        headers=tenant.secret_headers,
    )
    assert made.status_code == 201
    reader = {"Authorization": f"Bearer {made.json()['key']}"}
    assert client.get("/api/v1/workspace", headers=reader).status_code == 200
    refused = client.get("/api/v1/keys", headers=reader)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "missing_scope"


def test_keys_are_stored_hashed_and_shown_once(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    made = client.post(
        "/api/v1/keys",
        json={"kind": "secret", "name": "once", "scopes": ["admin"]},
        headers=tenant.secret_headers,
    )
    plain = made.json()["key"]
    key_id = made.json()["id"]
    with runtime.read_sessions() as db:
        row = db.scalar(select(ApiKey).where(ApiKey.id == key_id))
        assert row is not None
        assert row.key_hash == hash_token(plain)
        assert plain not in (row.key_hash, row.prefix, row.name)
    listed = client.get("/api/v1/keys", headers=tenant.secret_headers).text
    assert plain not in listed
    assert client.get(f"/api/v1/keys/{key_id}", headers=tenant.secret_headers).json().get("key") is None


def test_revoked_key_stops_working_at_once(client: TestClient, tenant: Tenant) -> None:
    made = client.post(
        "/api/v1/keys",
        json={"kind": "secret", "name": "temp", "scopes": ["admin"]},
        headers=tenant.secret_headers,
    ).json()
    temp = {"Authorization": f"Bearer {made['key']}"}
    assert client.get("/api/v1/workspace", headers=temp).status_code == 200
    assert client.delete(f"/api/v1/keys/{made['id']}", headers=tenant.secret_headers).status_code == 200
    answer = client.get("/api/v1/workspace", headers=temp)
    assert answer.status_code == 401
    audit = client.get("/api/v1/audit", headers=tenant.secret_headers).json()
    actions = [e["action"] for e in audit]
    assert "key.revoked" in actions and "key.created" in actions


def test_keys_in_query_strings_are_not_accepted(client: TestClient, tenant: Tenant) -> None:
    answer = client.get(f"/api/v1/workspace?key={tenant.secret_key}&api_key={tenant.secret_key}")
    assert answer.status_code == 401


def test_malformed_authorization_is_a_401_not_a_500(client: TestClient) -> None:
    for header in (
        "Basic !!!notbase64",
        "Bearer",
        "Token abc",
        "Basic " + base64.b64encode(b"\xff\xfe").decode(),
    ):
        answer = client.get("/api/v1/workspace", headers={"Authorization": header})
        assert answer.status_code == 401, header
        assert set(answer.json()["error"]) == {"code", "message", "details"}


def test_key_validation_errors(client: TestClient, tenant: Tenant) -> None:
    bad_scope = client.post(
        "/api/v1/keys", json={"kind": "secret", "scopes": ["root"]}, headers=tenant.secret_headers
    )
    assert bad_scope.status_code == 400
    assert "root" in bad_scope.json()["error"]["message"]
    scoped_write = client.post(
        "/api/v1/keys", json={"kind": "write", "scopes": ["admin"]}, headers=tenant.secret_headers
    )
    assert scoped_write.status_code == 400
    bad_kind = client.post("/api/v1/keys", json={"kind": "master"}, headers=tenant.secret_headers)
    assert bad_kind.status_code == 400
    assert bad_kind.json()["error"]["details"][0]["field"] == "kind"


def test_key_use_is_recorded(client: TestClient, tenant: Tenant) -> None:
    made = client.post(
        "/api/v1/keys",
        json={"kind": "secret", "name": "used", "scopes": ["profiles:read"]},
        headers=tenant.secret_headers,
    ).json()
    listed = {k["id"]: k for k in client.get("/api/v1/keys", headers=tenant.secret_headers).json()}
    assert listed[made["id"]]["last_used_at"] is None
    assert (
        client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {made['key']}"}).status_code == 200
    )
    listed = {k["id"]: k for k in client.get("/api/v1/keys", headers=tenant.secret_headers).json()}
    assert listed[made["id"]]["last_used_at"] is not None
