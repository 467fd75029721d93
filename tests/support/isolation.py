"""Workspace isolation (R20): every API route that takes an id is listed here with a way to make an object
of that kind in one workspace. tests/test_isolation.py then asks for it with another workspace's key and
expects 404, never data — and fails when a route with an id has no case here, so new features extend it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.models import Identity
from tests.support.tenants import Tenant

Maker = Callable[[TestClient, Tenant], dict[str, Any]]


@dataclass(frozen=True)
class IsolationCase:
    """One route: how to make the object it addresses in workspace A."""

    method: str
    path: str
    make: Maker
    body: dict[str, Any] | None = field(default=None)


def _make_key(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/keys",
        json={"kind": "secret", "name": "iso", "scopes": ["profiles:read"]},
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 201, answer.text
    return {"key_id": answer.json()["id"]}


def _make_topic(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post("/api/v1/topics", json={"key": "iso", "name": "Iso"}, headers=tenant.secret_headers)
    assert answer.status_code == 201, answer.text
    return {"topic_id": answer.json()["id"]}


def _make_profile(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/v1/identify",
        json={"userId": "iso-user", "traits": {"email": "iso@example.com"}},
        headers=tenant.write_headers,
    )
    assert answer.status_code == 200, answer.text
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    profile_id = None
    deadline = time.monotonic() + 10
    while profile_id is None and time.monotonic() < deadline:
        client.app.state.worker.drain()  # type: ignore[attr-defined]
        with runtime.read_sessions() as db:
            profile_id = db.scalar(
                select(Identity.profile_id).where(
                    Identity.workspace_id == tenant.workspace_id, Identity.value == "iso-user"
                )
            )
    assert profile_id is not None
    return {"profile_id": profile_id}


def _make_import(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/imports",
        files={"file": ("iso.csv", b"email,plan\niso@example.com,pro\nbad,free\n", "text/csv")},
        data={"kind": "profiles"},
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 202, answer.text
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    return {"import_id": answer.json()["id"]}


def _make_quarantined(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post("/v1/batch", json={"batch": [{"type": "track"}]}, headers=tenant.write_headers)
    assert answer.status_code == 200, answer.text
    return {"quarantine_id": answer.json()["quarantined"][0]["id"]}


def _make_message(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    profile = _make_profile(client, tenant)
    answer = client.post(
        "/api/v1/messages",
        json={
            "profile_id": profile["profile_id"],
            "channel": "email",
            "subject": "Receipt",
            "text": "Thanks",
        },
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 202, answer.text
    return {"message_pk": answer.json()["id"]}


def _make_computed_trait(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/computed-traits",
        json={"name": "iso_count", "event": "iso", "aggregation": "count"},
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 201, answer.text
    return {"trait_id": answer.json()["id"]}


def _make_score_run(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post("/api/v1/scores/run", json={"kinds": ["rfm"]}, headers=tenant.secret_headers)
    assert answer.status_code == 202, answer.text
    client.app.state.worker.drain()  # type: ignore[attr-defined]
    runs = client.get("/api/v1/scores/runs", headers=tenant.secret_headers).json()
    return {"run_id": runs[0]["id"]}


def _make_lifestyle_table(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/lifestyle-tables",
        files={"file": ("iso.csv", b"key,group\nLS,Leeds\n", "text/csv")},
        data={"name": "iso"},
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 201, answer.text
    return {"table_id": answer.json()["id"]}


CASES: list[IsolationCase] = [
    IsolationCase("GET", "/api/v1/messages/{message_pk}", _make_message),
    IsolationCase("GET", "/api/v1/profiles/{profile_id}/messages", _make_profile),
    IsolationCase("GET", "/api/v1/profiles/{profile_id}", _make_profile),
    IsolationCase("GET", "/api/v1/profiles/{profile_id}/events", _make_profile),
    IsolationCase("GET", "/api/v1/profiles/{profile_id}/traits", _make_profile),
    IsolationCase("GET", "/api/v1/profiles/{profile_id}/traits/history", _make_profile),
    IsolationCase("GET", "/api/v1/profiles/{profile_id}/export", _make_profile),
    IsolationCase("DELETE", "/api/v1/profiles/{profile_id}", _make_profile),
    IsolationCase("GET", "/api/v1/imports/{import_id}", _make_import),
    IsolationCase("GET", "/api/v1/imports/{import_id}/errors", _make_import),
    IsolationCase("GET", "/api/v1/topics/{topic_id}", _make_topic),
    IsolationCase("GET", "/api/v1/profiles/{profile_id}/consent", _make_profile),
    IsolationCase(
        "POST",
        "/api/v1/profiles/{profile_id}/consent",
        _make_profile,
        body={"channel": "email", "action": "withdrawn"},
    ),
    IsolationCase("POST", "/api/v1/profiles/{profile_id}/consent/double-opt-in", _make_profile, body={}),
    IsolationCase("GET", "/api/v1/quarantine/{quarantine_id}", _make_quarantined),
    IsolationCase("POST", "/api/v1/quarantine/{quarantine_id}/replay", _make_quarantined),
    IsolationCase(
        "PUT", "/api/v1/quarantine/{quarantine_id}/payload", _make_quarantined, body={"payload": {}}
    ),
    IsolationCase("GET", "/api/v1/keys/{key_id}", _make_key),
    IsolationCase("DELETE", "/api/v1/keys/{key_id}", _make_key),
    IsolationCase("GET", "/api/v1/messages/{message_pk}/links", _make_message),
    IsolationCase("GET", "/api/v1/computed-traits/{trait_id}", _make_computed_trait),
    IsolationCase(
        "PATCH", "/api/v1/computed-traits/{trait_id}", _make_computed_trait, body={"window_days": 7}
    ),
    IsolationCase("DELETE", "/api/v1/computed-traits/{trait_id}", _make_computed_trait),
    IsolationCase("GET", "/api/v1/scores/runs/{run_id}", _make_score_run),
    IsolationCase("GET", "/api/v1/lifestyle-tables/{table_id}", _make_lifestyle_table),
    IsolationCase("DELETE", "/api/v1/lifestyle-tables/{table_id}", _make_lifestyle_table),
    IsolationCase("GET", "/api/v1/segments/{segment_id}", lambda c, t: _make_segment(c, t)),
    IsolationCase(
        "PATCH", "/api/v1/segments/{segment_id}", lambda c, t: _make_segment(c, t), body={"description": "x"}
    ),
    IsolationCase("DELETE", "/api/v1/segments/{segment_id}", lambda c, t: _make_segment(c, t)),
    IsolationCase(
        "POST", "/api/v1/segments/{segment_id}/duplicate", lambda c, t: _make_segment(c, t), body={}
    ),
    IsolationCase("GET", "/api/v1/segments/{segment_id}/members", lambda c, t: _make_segment(c, t)),
    # templates and snippets (rapport.content)
    IsolationCase("GET", "/api/v1/templates/{template_id}", lambda c, t: _make_template(c, t)),
    IsolationCase(
        "PATCH",
        "/api/v1/templates/{template_id}",
        lambda c, t: _make_template(c, t),
        body={"description": "x"},
    ),
    IsolationCase("DELETE", "/api/v1/templates/{template_id}", lambda c, t: _make_template(c, t)),
    IsolationCase(
        "POST", "/api/v1/templates/{template_id}/duplicate", lambda c, t: _make_template(c, t), body={}
    ),
    IsolationCase(
        "POST", "/api/v1/templates/{template_id}/preview", lambda c, t: _make_template(c, t), body={}
    ),
    IsolationCase("GET", "/api/v1/snippets/{snippet_id}", lambda c, t: _make_snippet(c, t)),
    IsolationCase(
        "PATCH", "/api/v1/snippets/{snippet_id}", lambda c, t: _make_snippet(c, t), body={"source": "x"}
    ),
    IsolationCase("DELETE", "/api/v1/snippets/{snippet_id}", lambda c, t: _make_snippet(c, t)),
]


def _make_segment(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/segments",
        json={"name": "Iso", "text": "random bucket < 50%"},
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 201, answer.text
    return {"segment_id": answer.json()["id"]}


# -- catalogue (issue 7) -----------------------------------------------------------------------------------
def _make_product(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/products", json={"product_id": "iso-p", "name": "Iso"}, headers=tenant.secret_headers
    )
    assert answer.status_code == 201, answer.text
    return {"product_id": answer.json()["product_id"]}


CASES += [
    IsolationCase("GET", "/api/v1/products/{product_id}", _make_product),
    IsolationCase("DELETE", "/api/v1/products/{product_id}", _make_product),
    IsolationCase("GET", "/api/v1/profiles/{profile_id}/recommendations", _make_profile),
]


def _make_template(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/templates",
        json={"name": "Iso", "channel": "sms", "content": {"body": "Hi {{ first_name }}"}},
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 201, answer.text
    return {"template_id": answer.json()["id"]}


def _make_snippet(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/snippets", json={"name": "iso", "source": "<p>iso</p>"}, headers=tenant.secret_headers
    )
    assert answer.status_code == 201, answer.text
    return {"snippet_id": answer.json()["id"]}


# -- campaigns (issue 7) -----------------------------------------------------------------------------------
def _make_campaign(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    answer = client.post(
        "/api/v1/campaigns",
        json={
            "name": "Iso",
            "kind": "triggered",
            "channel": "sms",
            "trigger": {"type": "event", "event": "iso"},
            "variants": [{"key": "A", "content": {"body": "Hi"}}],
        },
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 201, answer.text
    return {"campaign_id": answer.json()["id"]}


CASES += [
    IsolationCase("GET", "/api/v1/campaigns/{campaign_id}", _make_campaign),
    IsolationCase("PATCH", "/api/v1/campaigns/{campaign_id}", _make_campaign, body={"description": "x"}),
    *(
        IsolationCase("POST", f"/api/v1/campaigns/{{campaign_id}}/{verb}", _make_campaign, body={})
        for verb in ("launch", "pause", "resume", "cancel", "archive", "duplicate", "decide", "test")
    ),
    IsolationCase("GET", "/api/v1/campaigns/{campaign_id}/audience", _make_campaign),
    IsolationCase("GET", "/api/v1/campaigns/{campaign_id}/stats", _make_campaign),
    IsolationCase("GET", "/api/v1/campaigns/{campaign_id}/recipients", _make_campaign),
]
