"""Every route answers an id no row can have (past 64 bits) as 404, never 500 (``api.deps.ids_in_range``).

Binding such an id failed in the driver (SQLite ``OverflowError``, PostgreSQL out of range) as a 500 on
``/api/v1/segments/{id}``, ``/api/v1/profiles/{id}`` and others, found by a crawl of the UI.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.testclient import TestClient

from tests.support.tenants import Tenant
from tests.web.ui import ui_login

HUGE = str(10**20)


def _routes(routes: Iterable[Any]) -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, through included routers (FastAPI includes them lazily)."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            yield from _routes(route.effective_route_contexts())
        elif isinstance(getattr(route, "methods", None), set | frozenset):
            yield route.path, set(route.methods)


def test_no_route_answers_500_for_an_id_past_64_bits(client: TestClient, tenant: Tenant) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    tried = 0
    for template, methods in _routes(client.app.routes):  # type: ignore[attr-defined]
        if not re.search(r"\{\w+_id\}", template):
            continue
        path = re.sub(r"\{\w+_id\}", HUGE, template)
        path = re.sub(r"\{[^}]+\}", "x", path)  # any other parameter (a token, a key)
        for method in sorted(methods - {"HEAD"}):
            headers = {**tenant.secret_headers, "X-CSRF-Token": csrf}
            answer = client.request(method, path, headers=headers, data={"csrf_token": csrf})
            assert answer.status_code == 404, (method, template, answer.status_code, answer.text[:200])
            tried += 1
    assert tried > 50, tried  # the routes with ids: the API's and the UI's


def test_the_largest_id_still_reaches_the_route(client: TestClient, tenant: Tenant) -> None:
    largest = str(2**63 - 1)
    answer = client.get(f"/api/v1/segments/{largest}", headers=tenant.secret_headers)
    assert (
        answer.status_code == 404 and largest in answer.json()["error"]["message"]
    )  # the route's own answer
