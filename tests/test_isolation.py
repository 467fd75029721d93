"""R20: with two workspaces, addressing workspace A's objects with workspace B's key yields 404, never data."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.support.isolation import CASES
from tests.support.routes import api_operations
from tests.support.tenants import Tenant


def _api_routes_with_ids(app: FastAPI) -> set[tuple[str, str]]:
    return {(m, p) for m, p in api_operations(app, prefix="/api/") if "{" in p}


def test_every_api_route_with_an_id_has_an_isolation_case(app: FastAPI) -> None:
    covered = {(c.method, c.path) for c in CASES}
    missing = sorted(_api_routes_with_ids(app) - covered)
    assert missing == [], f"add these routes to tests/support/isolation.py: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[f"{c.method} {c.path}" for c in CASES])
def test_other_workspace_gets_404(client: TestClient, tenant: Tenant, other_tenant: Tenant, case) -> None:  # type: ignore[no-untyped-def]
    params = case.make(client, tenant)
    path = case.path.format(**params)
    # The owner can reach it…
    own = (
        client.request(
            "GET" if case.method == "DELETE" else case.method,
            path,
            headers=tenant.secret_headers,
            json=case.body,
        )
        if case.method in {"GET", "DELETE"}
        else None
    )
    if own is not None:
        assert own.status_code == 200, own.text
    # …the other workspace cannot, and learns nothing.
    answer = client.request(case.method, path, headers=other_tenant.secret_headers, json=case.body)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"
    assert str(tenant.slug) not in answer.text
