"""R5: the same Idempotency-Key and body returns the saved answer; another body is 422; one effect only."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import func, select

from rapport.api import idempotency
from rapport.api.deps import DbSession
from rapport.audit import service as audit_service
from rapport.errors import Conflict
from rapport.models import AuditEntry
from rapport.runtime import Runtime
from tests.support.tenants import Tenant


class Order(BaseModel):
    item: str
    fail: bool = False


def _add_route(app: FastAPI) -> None:
    @app.post("/test/orders")
    def place(order: Order, request: Request, db: DbSession) -> JSONResponse:
        def effect() -> tuple[int, dict[str, Any]]:
            entry = audit_service.record(
                db, workspace_id=None, actor="test", action="order.placed", details={"item": order.item}
            )
            if order.fail:
                raise Conflict("out of stock")
            return 201, {"order": entry.id, "item": order.item}

        return idempotency.run(request, db, workspace_id=1, body=order.model_dump(), effect=effect)


def _effects(runtime: Runtime) -> int:
    with runtime.read_sessions() as db:
        return int(
            db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "order.placed"))
            or 0
        )


def test_replay_mismatch_and_no_key(
    app: FastAPI, client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    _add_route(app)
    first = client.post("/test/orders", json={"item": "mug"}, headers={"Idempotency-Key": "k1"})
    again = client.post("/test/orders", json={"item": "mug"}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/test/orders", json={"item": "plate"}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_mismatch"
    assert _effects(runtime) == 1
    client.post("/test/orders", json={"item": "mug"})
    client.post("/test/orders", json={"item": "mug"})
    assert _effects(runtime) == 3


def test_a_failed_effect_frees_the_key(
    app: FastAPI, client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    _add_route(app)
    failed = client.post(
        "/test/orders", json={"item": "mug", "fail": True}, headers={"Idempotency-Key": "k2"}
    )
    assert failed.status_code == 409
    assert _effects(runtime) == 0
    retried = client.post(
        "/test/orders", json={"item": "mug", "fail": True}, headers={"Idempotency-Key": "k2"}
    )
    assert retried.status_code == 409  # ran again (not replayed, not "in progress")
    assert retried.json()["error"]["code"] == "conflict"


@pytest.mark.slow
def test_fifty_concurrent_posts_with_one_key_cause_one_effect(
    app: FastAPI, runtime: Runtime, tenant: Tenant
) -> None:
    import uvicorn

    from tests.support.pg import free_port

    _add_route(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    statuses: list[int] = []
    bodies: list[dict[str, Any]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def post() -> None:
        with httpx.Client(timeout=60) as c:
            barrier.wait()
            answer = c.post(
                f"http://127.0.0.1:{port}/test/orders",
                json={"item": "lamp"},
                headers={"Idempotency-Key": "same"},
            )
        with lock:
            statuses.append(answer.status_code)
            if answer.status_code == 201:
                bodies.append(answer.json())

    threads = [threading.Thread(target=post) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    server.should_exit = True
    thread.join(10)
    assert len(statuses) == 50
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    assert _effects(runtime) == 1
    assert all(b == bodies[0] for b in bodies)
