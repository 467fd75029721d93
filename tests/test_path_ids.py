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


def test_an_id_past_64_bits_in_any_spelling_the_route_would_read_is_404(
    client: TestClient, tenant: Tenant
) -> None:
    spellings = [
        "-99999999999999999999",
        "+99999999999999999999",
        "9_999_999_999_999_999_999",
        "99999999999999999999.0",
        "-9223372036854775809",
    ]
    for path in ("/api/v1/profiles/{}", "/api/v1/snippets/{}", "/api/v1/lifestyle-tables/{}"):
        for spelling in spellings:
            for method in ("GET", "DELETE"):
                answer = client.request(method, path.format(spelling), headers=tenant.secret_headers)
                assert answer.status_code in (404, 405), (method, path, spelling, answer.text[:200])
    assert client.get("/api/v1/profiles/-5", headers=tenant.secret_headers).status_code == 404
