"""Errors answered to a person's browser on a UI address are HTML pages; every program keeps the JSON shape."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from rapport.errors import RapportError
from rapport.web.error_pages import prefers_html
from rapport.web.session import UiPage, UiRoute
from tests.support.tenants import Tenant
from tests.web.ui import ui_login

#: What chromium sends when it loads a page.
BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,"
    "*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
}


def _is_json_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code


def test_a_mistyped_ui_address_is_an_html_404_page_in_the_layout(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    for path in ("/campaign", "/settings/no-such-tab", "/customers/12/nothing-here"):
        answer = client.get(path, headers=BROWSER)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert '<h1 id="error-title">Not found</h1>' in answer.text
        assert "There is no page at this address." in answer.text
        assert '<a class="button button--secondary" href="/">Back to the dashboard</a>' in answer.text
        assert '<span class="workspace" title="Workspace">Acme</span>' in answer.text  # signed in: the layout
        assert '"error"' not in answer.text
        assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_a_signed_out_browser_gets_the_404_page_without_the_layout(client: TestClient) -> None:
    answer = client.get("/campaign", headers=BROWSER)
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert '<h1 id="error-title">Not found</h1>' in answer.text
    assert 'class="topbar"' not in answer.text


def test_a_wrong_method_on_a_ui_address_is_an_html_405_page(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    answer = client.get("/logout", headers=BROWSER)
    assert answer.status_code == 405 and answer.headers["content-type"].startswith("text/html")
    assert '<h1 id="error-title">Method not allowed</h1>' in answer.text
    assert answer.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/no-such-thing", 404, "not_found"),
        ("/api", 404, "not_found"),
        ("/v1/no/such/thing", 405, "method_not_allowed"),  # the collection API's CORS route matches any path
        ("/t/x/y", 404, "not_found"),
        ("/u/token/nothing", 404, "not_found"),
        ("/webhooks/nothing", 404, "not_found"),
        ("/ui/api/nothing", 404, "not_found"),
        ("/healthz/nothing", 404, "not_found"),
    ],
)
def test_machine_endpoints_keep_the_json_error_even_for_a_browser(
    client: TestClient, tenant: Tenant, path: str, status: int, code: str
) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    _is_json_error(client.get(path, headers=BROWSER), status, code)


def test_programs_and_htmx_keep_the_json_error_on_ui_addresses(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    for headers in (
        {},  # httpx's */*, like curl's
        {"Accept": "application/json"},
        {"Accept": "application/json, text/html"},
        {**BROWSER, "HX-Request": "true"},  # htmx swaps no error answer: as before
    ):
        _is_json_error(client.get("/campaign", headers=headers), 404, "not_found")
    _is_json_error(client.put("/api/v1/workspace", headers=BROWSER), 405, "method_not_allowed")


def test_an_unexpected_error_on_a_ui_page_is_an_html_500_without_a_trace(
    app: FastAPI, client: TestClient, tenant: Tenant
) -> None:
    router = APIRouter(route_class=UiRoute)

    @router.get("/boom-page")
    def boom(ui: UiPage) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    @router.get("/boom-rapport")
    def boom_rapport(ui: UiPage) -> None:
        raise RapportError("secret database detail")

    app.include_router(router)
    ui_login(client, tenant.viewer_email, tenant.password)
    for path in ("/boom-page", "/boom-rapport"):
        answer = client.get(path, headers=BROWSER)
        assert answer.status_code == 500, path
        assert answer.headers["content-type"].startswith("text/html")
        assert '<h1 id="error-title">Something went wrong</h1>' in answer.text
        assert "It has been logged; please try again in a moment." in answer.text
        assert '<span class="workspace" title="Workspace">Acme</span>' in answer.text
        assert (
            "secret" not in answer.text
            and "Traceback" not in answer.text
            and "RuntimeError" not in answer.text
        )
        # A program calling the same address still gets the JSON shape.
        _is_json_error(client.get(path), 500, "internal_error")


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER["Accept"], True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # Firefox
        ("*/*", False),
        ("", False),
        ("application/json", False),
        ("application/json, text/html", False),  # a tie is not a preference
        ("text/html;q=0.5, application/json", False),
        ("application/json;q=0.4, TEXT/HTML", True),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
    ],
)
def test_prefers_html_reads_the_accept_header(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html
