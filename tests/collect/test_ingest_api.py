"""The tracking API as SDKs call it: auth, gzip, every call type, limits and status codes (R3), R16, R19."""

from __future__ import annotations

import functools
import gzip
import json
import threading
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from rapport.accounts import service as accounts_service
from rapport.app import create_app
from rapport.collect.normalize import MAX_BATCH_BYTES, MAX_EVENT_BYTES
from rapport.config import Settings
from rapport.db.engine import normalize_url
from rapport.kit.clock import Clock, FakeClock
from rapport.models import AuditEntry
from rapport.runtime import Runtime, build_runtime
from tests.collect.ingest_support import basic, event_count, events, gzipped, quarantined, track
from tests.support.tenants import Tenant, make_tenant

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return FakeClock(T0)


def _secret(runtime: Runtime, tenant: Tenant, scopes: list[str]) -> str:
    with runtime.sessions() as db:
        issued = accounts_service.create_key(
            db, workspace_id=tenant.workspace_id, kind="secret", name="s", scopes=scopes, actor="test"
        )
        db.commit()
        return issued.plain


def test_every_call_type_with_basic_auth(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    calls = {
        "identify": {"userId": "u1", "traits": {"name": "Ada"}},
        "track": {"userId": "u1", "event": "Order Completed", "properties": {"revenue": 12.5}},
        "page": {"anonymousId": "a1", "name": "Home", "context": {"page": {"url": "https://x.test/"}}},
        "screen": {"anonymousId": "a1", "name": "Basket", "context": {"app": {"name": "Shop"}}},
        "group": {"userId": "u1", "groupId": "g1", "traits": {"plan": "pro"}},
        "alias": {"userId": "u1", "previousId": "a1"},
    }
    for kind, body in calls.items():
        answer = client.post(
            f"/v1/{kind}", json={**body, "messageId": f"m-{kind}"}, headers=basic(tenant.write_key)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"success": True}
    stored = {e.message_id: e for e in events(runtime, tenant.workspace_id)}
    assert set(stored) == {f"m-{kind}" for kind in calls}
    assert {e.type for e in stored.values()} == set(calls)
    assert stored["m-track"].event == "Order Completed"
    assert stored["m-track"].properties == {"revenue": 12.5}
    assert stored["m-page"].channel == "web"
    assert stored["m-screen"].channel == "app"
    assert stored["m-identify"].traits == {"name": "Ada"}
    assert stored["m-alias"].extra["previousId"] == "a1"
    assert all(e.state == 0 and e.profile_id is None for e in stored.values())
    assert all(e.received_at == T0 for e in stored.values())


def test_write_key_in_body_and_as_bearer(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    assert client.post("/v1/track", json={**track("b1"), "writeKey": tenant.write_key}).status_code == 200
    bearer = {"Authorization": f"Bearer {tenant.write_key}"}
    assert client.post("/v1/track", json=track("b2"), headers=bearer).status_code == 200
    batch = {"writeKey": tenant.write_key, "batch": [track("b3"), track("b4")]}
    assert client.post("/v1/batch", json=batch).status_code == 200
    assert {e.message_id for e in events(runtime, tenant.workspace_id)} == {"b1", "b2", "b3", "b4"}
    assert all("writeKey" not in e.extra for e in events(runtime, tenant.workspace_id))


def test_gzip_batch_like_analytics_node(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    body = {
        "batch": [track(f"g{i}", timestamp=(T0 - timedelta(seconds=i)).isoformat()) for i in range(20)],
        "sentAt": T0.isoformat(),
        "context": {"library": {"name": "analytics-node", "version": "6.0"}},
    }
    headers = {**basic(tenant.write_key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    answer = client.post("/v1/batch", content=gzipped(body), headers=headers)
    assert answer.status_code == 200, answer.text
    stored = events(runtime, tenant.workspace_id)
    assert len(stored) == 20
    assert all(e.context["library"]["name"] == "analytics-node" for e in stored)
    # Import is the same endpoint under another name; deflate is accepted too.
    deflated = zlib.compress(json.dumps({"batch": [track("d1")]}).encode())
    answer = client.post(
        "/v1/import", content=deflated, headers={**basic(tenant.write_key), "Content-Encoding": "deflate"}
    )
    assert answer.status_code == 200, answer.text
    assert event_count(runtime, tenant.workspace_id) == 21


def test_clock_skew_is_corrected_against_the_server_clock(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    device_now = T0 + timedelta(hours=3)  # the phone's clock is 3 hours fast
    body = {
        "batch": [track("s1", timestamp=(device_now - timedelta(minutes=10)).isoformat())],
        "sentAt": device_now.isoformat(),
    }
    assert client.post("/v1/batch", json=body, headers=basic(tenant.write_key)).status_code == 200
    (event,) = events(runtime, tenant.workspace_id)
    assert event.timestamp == T0 - timedelta(minutes=10)
    assert event.sent_at == device_now
    assert event.received_at == T0


def test_secret_key_with_events_write_may_send(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    key = _secret(runtime, tenant, ["events:write"])
    answer = client.post("/v1/track", json=track("sk1"), headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert client.post("/v1/track", json=track("sk2"), headers=basic(key)).status_code == 200
    assert event_count(runtime, tenant.workspace_id) == 2


def test_secret_key_without_events_write_is_refused(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    key = _secret(runtime, tenant, ["profiles:read"])
    answer = client.post("/v1/track", json=track("x"), headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "missing_scope"
    assert event_count(runtime, tenant.workspace_id) == 0


def test_missing_wrong_and_revoked_keys_are_refused(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    assert client.post("/v1/track", json=track("x")).status_code == 401
    assert client.post("/v1/track", json=track("x"), headers=basic("wk_nope")).status_code == 401
    assert client.post("/v1/track", json={**track("x"), "writeKey": "wk_nope"}).status_code == 401
    assert client.post("/v1/track", json={**track("x"), "writeKey": 5}).status_code == 401
    assert client.post("/v1/track", json=track("x"), headers={"Authorization": "Basic !!"}).status_code == 401
    assert client.post("/v1/track", json=track("x"), headers={"Authorization": "Digest x"}).status_code == 401
    # A logged-in UI session is not a way to send events.
    client.post("/login", data={"email": tenant.admin_email, "password": tenant.password})
    assert client.post("/v1/track", json=track("x")).status_code == 401
    with runtime.sessions() as db:
        keys = accounts_service.list_keys(db, workspace_id=tenant.workspace_id)
        write = next(k for k in keys if k.kind == "write")
        accounts_service.revoke_key(
            db, workspace_id=tenant.workspace_id, key_id=write.id, actor="test", now=runtime.clock.now()
        )
        db.commit()
    answer = client.post("/v1/track", json=track("x"), headers=basic(tenant.write_key))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"
    assert event_count(runtime, tenant.workspace_id) == 0


def test_revocation_reaches_ingest_within_the_key_cache_time(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    state = client.app.state.ingest  # type: ignore[attr-defined]
    state.auth.ttl = 0.2
    assert client.post("/v1/track", json=track("r1"), headers=basic(tenant.write_key)).status_code == 200
    with runtime.sessions() as db:
        write = next(
            k for k in accounts_service.list_keys(db, workspace_id=tenant.workspace_id) if k.kind == "write"
        )
        accounts_service.revoke_key(
            db, workspace_id=tenant.workspace_id, key_id=write.id, actor="test", now=runtime.clock.now()
        )
        db.commit()
    time.sleep(0.25)
    assert client.post("/v1/track", json=track("r2"), headers=basic(tenant.write_key)).status_code == 401


# --- limits and status codes (R3) --------------------------------------------------------------------------


def _body_of_size(size: int, **extra: Any) -> bytes:
    doc = {"userId": "u", "event": "E", "messageId": "size", "properties": {"pad": ""}, **extra}
    base = len(json.dumps(doc, separators=(",", ":")).encode())
    doc["properties"]["pad"] = "x" * (size - base)
    body = json.dumps(doc, separators=(",", ":")).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize(("size", "status"), [(32_767, 200), (32_768, 200), (32_769, 400)])
def test_single_event_size_boundary(
    client: TestClient, tenant: Tenant, runtime: Runtime, size: int, status: int
) -> None:
    answer = client.post(
        "/v1/track",
        content=_body_of_size(size),
        headers={**basic(tenant.write_key), "Content-Type": "application/json"},
    )
    assert answer.status_code == status, answer.text
    if status == 400:
        error = answer.json()["error"]
        assert error["code"] == "event_too_large"
        assert f"{MAX_EVENT_BYTES:,}" in error["message"]
        assert answer.headers.get("retry-after") is None
    assert event_count(runtime, tenant.workspace_id) == (1 if status == 200 else 0)


@pytest.mark.parametrize(("size", "accepted"), [(32_768, True), (32_769, False)])
def test_batch_item_size_boundary(
    client: TestClient, tenant: Tenant, runtime: Runtime, size: int, accepted: bool
) -> None:
    item = json.loads(_body_of_size(size, type="track"))
    answer = client.post("/v1/batch", json={"batch": [item, track("small")]}, headers=basic(tenant.write_key))
    assert answer.status_code == 200
    assert event_count(runtime, tenant.workspace_id) == (2 if accepted else 1)
    if not accepted:
        (note,) = answer.json()["quarantined"]
        assert note["index"] == 0
        assert "32,768" in note["reason"]


def test_batch_size_boundary(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    def batch_body(size: int) -> bytes:
        items = [track(f"big{i}", properties={"pad": "y" * 20_000}) for i in range(24)]
        doc: dict[str, Any] = {"batch": items, "pad": ""}
        base = len(json.dumps(doc, separators=(",", ":")).encode())
        doc["pad"] = "z" * (size - base)
        body = json.dumps(doc, separators=(",", ":")).encode()
        assert len(body) == size
        return body

    headers = {**basic(tenant.write_key), "Content-Type": "application/json"}
    assert client.post("/v1/batch", content=batch_body(MAX_BATCH_BYTES), headers=headers).status_code == 200
    answer = client.post("/v1/batch", content=batch_body(MAX_BATCH_BYTES + 1), headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "batch_too_large"
    assert event_count(runtime, tenant.workspace_id) == 24


@functools.cache
def _bomb() -> bytes:
    return gzip.compress(b'{"batch":[' + b" " * 20_000_000 + b"]}", compresslevel=9)


def test_gzip_bomb_stops_at_the_limit(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    # 20 MB of spaces compresses to ~20 KB; it must be refused without being inflated whole.
    bomb = _bomb()
    assert len(bomb) < MAX_BATCH_BYTES
    headers = {**basic(tenant.write_key), "Content-Encoding": "gzip"}
    answer = client.post("/v1/batch", content=bomb, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "batch_too_large"
    answer = client.post("/v1/track", content=bomb, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "event_too_large"


def test_broken_encodings(client: TestClient, tenant: Tenant) -> None:
    headers = {**basic(tenant.write_key), "Content-Encoding": "gzip"}
    assert client.post("/v1/track", content=b"not gzip", headers=headers).json()["error"]["code"] == (
        "invalid_encoding"
    )
    truncated = gzipped(track("t"))[:-10]
    answer = client.post("/v1/track", content=truncated, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_encoding"
    answer = client.post(
        "/v1/track", content=b"{}", headers={**basic(tenant.write_key), "Content-Encoding": "br"}
    )
    assert answer.status_code == 415


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{", "invalid_json", None),
        (b'{"userId": "u", "event": "E", "properties": {"x": NaN}}', "invalid_json", None),
        (b"", "validation_failed", ""),
        (b"[1, 2]", "validation_failed", ""),
        (b'{"event": "E"}', "validation_failed", "userId"),
        (b'{"userId": "u"}', "validation_failed", "event"),
        (b'{"userId": "u", "event": "E", "properties": "x"}', "validation_failed", "properties"),
        (b'{"userId": "u", "event": "E", "timestamp": "soon"}', "validation_failed", "timestamp"),
    ],
)
def test_client_mistakes_get_400_with_a_field_reason(
    client: TestClient, tenant: Tenant, body: bytes, code: str, field: str | None
) -> None:
    answer = client.post(
        "/v1/track", content=body, headers={**basic(tenant.write_key), "Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert field in {e["field"] for e in error["details"]["errors"]}


def test_an_invalid_single_event_is_quarantined_too(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    answer = client.post(
        "/v1/identify", json={"traits": {"a": 1}, "messageId": "q1"}, headers=basic(tenant.write_key)
    )
    assert answer.status_code == 400
    details = answer.json()["error"]["details"]
    (row,) = quarantined(runtime, tenant.workspace_id)
    assert details["quarantined"] == row.id
    assert details["messageId"] == "q1"
    assert row.details["route_type"] == "identify"


def test_batch_envelope_mistakes(client: TestClient, tenant: Tenant) -> None:
    headers = basic(tenant.write_key)
    assert client.post("/v1/batch", json={"batch": {"a": 1}}, headers=headers).status_code == 400
    assert client.post("/v1/batch", json={}, headers=headers).status_code == 400
    assert client.post("/v1/batch", json={"batch": [], "context": 5}, headers=headers).status_code == 400
    many = client.post("/v1/batch", json={"batch": [{}] * 5_001}, headers=headers)
    assert many.status_code == 400
    assert many.json()["error"]["code"] == "batch_too_large"
    empty = client.post("/v1/batch", json={"batch": []}, headers=headers)
    assert empty.status_code == 200
    assert empty.json() == {"success": True}


def test_overload_answers_429_with_retry_after(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    state = client.app.state.ingest  # type: ignore[attr-defined]
    state.committer.max_pending = 6
    # Warm the key cache first: its last-used update must not wait behind the lock taken below.
    assert client.post("/v1/track", json=track("warm"), headers=basic(tenant.write_key)).status_code == 200
    # Hold the store's write lock so the committer's first transaction waits and the queue fills.
    blocker = runtime.engine.connect()
    if runtime.is_sqlite:
        blocker.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: takes the write lock
    else:
        blocker.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
    results: list[int] = []

    def send(i: int) -> None:
        batch = {"batch": [track(f"o{i}-{j}") for j in range(3)]}
        results.append(client.post("/v1/batch", json=batch, headers=basic(tenant.write_key)).status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.time() + 10
    while state.committer.pending < 6 and time.time() < deadline:
        time.sleep(0.01)
    answer = client.post("/v1/track", json=track("over"), headers=basic(tenant.write_key))
    assert answer.status_code == 429, answer.text
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["code"] == "ingest_overloaded"
    blocker.rollback()
    blocker.close()
    for t in threads:
        t.join()
    assert results == [200, 200]
    assert event_count(runtime, tenant.workspace_id) == 7


# --- consent hook (R16) -----------------------------------------------------------------------------------


def test_write_key_cannot_grant_consent_and_the_attempt_is_audited(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    body = {
        "userId": "u1",
        "messageId": "c1",
        "traits": {"email": "ada@example.com", "email_opt_in": True, "subscriptions": {"newsletter": True}},
    }
    assert client.post("/v1/identify", json=body, headers=basic(tenant.write_key)).status_code == 200
    (event,) = events(runtime, tenant.workspace_id)
    assert event.traits == {"email": "ada@example.com", "subscriptions": {}}
    assert event.extra["_consent_grant_refused"] is True
    with runtime.read_sessions() as db:
        entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "consent.grant_refused")).all()
    assert len(entries) == 1
    entry = entries[0]
    assert entry.workspace_id == tenant.workspace_id
    assert entry.actor.startswith("key:")
    assert entry.target_id == "c1"
    assert {r["path"] for r in entry.details["refused"]} == {
        "traits.email_opt_in",
        "traits.subscriptions.newsletter",
    }
    assert "ada@example.com" not in json.dumps(entry.details)


def test_write_key_withdrawal_is_recorded_as_intent(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    body = {"userId": "u1", "event": "Unsubscribed", "properties": {"email_opt_in": False}}
    assert client.post("/v1/track", json=body, headers=basic(tenant.write_key)).status_code == 200
    (event,) = events(runtime, tenant.workspace_id)
    assert event.properties == {"email_opt_in": False}
    assert event.extra["_consent_withdrawals"] == [
        {"path": "properties.email_opt_in", "subject": "email", "value": False}
    ]
    with runtime.read_sessions() as db:
        assert db.scalars(select(AuditEntry).where(AuditEntry.action == "consent.grant_refused")).all() == []


def test_secret_key_with_consent_scope_passes_grants_as_intent(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    key = _secret(runtime, tenant, ["events:write", "consent:write"])
    body = {"userId": "u1", "traits": {"email_opt_in": True}}
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post("/v1/identify", json=body, headers=headers).status_code == 200
    (event,) = events(runtime, tenant.workspace_id)
    assert event.traits == {"email_opt_in": True}
    assert event.extra["_consent_grants"][0]["subject"] == "email"


def test_cors_preflight(client: TestClient) -> None:
    answer = client.options("/v1/batch")
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "*"


def test_store_outage_answers_503_and_acknowledges_nothing(
    backend: str, request: pytest.FixtureRequest
) -> None:
    if backend != "postgresql":
        pytest.skip("takes the PostgreSQL database away from under the server")
    # A database of its own: the outage must not reach the connections of the shared test database.
    factory = request.getfixturevalue("pg_factory")
    url = factory.new_url()
    settings = Settings(database_url=url, secret_key="outage-secret-0123456789", run_worker_in_process=False)
    runtime = build_runtime(settings, clock=FakeClock(T0))
    admin = create_engine(
        normalize_url(request.getfixturevalue("pg_server_url")), isolation_level="AUTOCOMMIT"
    )
    try:
        tenant = make_tenant(runtime, "outage")
        with TestClient(create_app(settings, runtime=runtime, start_worker=False)) as client:
            headers = basic(tenant.write_key)
            assert client.post("/v1/track", json=track("before"), headers=headers).status_code == 200
            name = make_url(url).database
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :n AND pid <> pg_backend_pid()"
                    ),
                    {"n": name},
                )
            answer = client.post("/v1/track", json=track("during"), headers=headers)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "store_unavailable"
            assert answer.headers["retry-after"] == "2"
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            assert client.post("/v1/track", json=track("after"), headers=headers).status_code == 200
        assert {e.message_id for e in events(runtime, tenant.workspace_id)} == {"before", "after"}
    finally:
        admin.dispose()
        runtime.close()
        factory.drop(url)
