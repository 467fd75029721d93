"""Every API error has one shape and the right status; no stack trace reaches a client."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.errors import Conflict
from tests.support.tenants import Tenant


def _shape(body: dict) -> None:  # type: ignore[type-arg]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_unknown_route_is_a_404_in_the_error_shape(client: TestClient) -> None:
    answer = client.get("/api/v1/no-such-thing")
    assert answer.status_code == 404
    _shape(answer.json())
    assert answer.json()["error"]["code"] == "not_found"


def test_wrong_method_is_405(client: TestClient, tenant: Tenant) -> None:
    answer = client.put("/api/v1/workspace", headers=tenant.secret_headers)
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_malformed_json_is_a_400_with_a_reason(client: TestClient, tenant: Tenant) -> None:
    answer = client.post(
        "/api/v1/keys",
        content=b'{"kind": ',
        headers={**tenant.secret_headers, "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    _shape(answer.json())
    assert answer.json()["error"]["code"] == "validation_failed"


def test_field_level_reasons(client: TestClient, tenant: Tenant) -> None:
    answer = client.post("/api/v1/keys", json={"kind": 5, "name": ["x"]}, headers=tenant.secret_headers)
    assert answer.status_code == 400
    fields = {d["field"] for d in answer.json()["error"]["details"]}
    assert {"kind", "name"} <= fields


def test_service_errors_keep_their_code_and_status(app: FastAPI, client: TestClient) -> None:
    @app.get("/boom-conflict")
    def boom() -> None:
        raise Conflict("already there", details={"id": 3})

    answer = client.get("/boom-conflict")
    assert answer.status_code == 409
    assert answer.json() == {"error": {"code": "conflict", "message": "already there", "details": {"id": 3}}}


def test_unexpected_errors_are_500_without_a_trace(app: FastAPI, client: TestClient) -> None:
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    answer = client.get("/boom")
    assert answer.status_code == 500
    _shape(answer.json())
    assert answer.json()["error"]["code"] == "internal_error"
    assert "secret internal detail" not in answer.text
    assert "Traceback" not in answer.text


def test_every_answer_carries_a_request_id(client: TestClient) -> None:
    assert len(client.get("/healthz").headers["x-request-id"]) >= 8
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    forged = client.get("/healthz", headers={"X-Request-ID": "a b\tinjected"}).headers["x-request-id"]
    assert forged != "a b\tinjected"
    assert " " not in forged


def test_healthz_reports_database_and_schema(client: TestClient, backend: str) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok"
    assert body["database"] == backend
    assert body["schema"] == body["schema_head"]


def test_healthz_is_503_when_the_database_is_unreachable() -> None:
    from rapport.app import create_app
    from rapport.config import Settings

    app = create_app(
        Settings(database_url="postgresql://nobody@127.0.0.1:1/none", secret_key="x" * 20), start_worker=False
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["database"] == "unreachable"


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/keys" in spec["paths"]
