"""Logging in and out of the UI: the signed double-submit login form, cookies, redirects, sessions."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from rapport.accounts import service as accounts_service
from rapport.api.deps import SESSION_COOKIE
from rapport.app import create_app
from rapport.kit.clock import Clock, FakeClock
from rapport.models import UiSession
from rapport.runtime import Runtime
from rapport.web.session import login_url, safe_next
from tests.support.tenants import Tenant
from tests.web.ui import csrf_of, hidden_field, post_login, ui_login


@pytest.fixture
def clock() -> Clock:
    """A clock the session-expiry test can move."""
    return FakeClock()


def _session_rows(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return db.query(UiSession).count()


def test_pages_send_strangers_to_the_login_page_and_back(client: TestClient, tenant: Tenant) -> None:
    answer = client.get("/settings/keys?revoked=true", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/settings/keys%3Frevoked%3Dtrue"
    login = post_login(client, tenant.admin_email, tenant.password, next_path="/settings/keys?revoked=true")
    assert login.status_code == 303
    assert login.headers["location"] == "/settings/keys?revoked=true"


def test_login_never_redirects_off_site(client: TestClient, tenant: Tenant) -> None:
    for next_path in [
        "https://evil.test/",
        "//evil.test/x",
        "/\\evil.test",
        "javascript:alert(1)",
        "/ok\r\nX: y",
    ]:
        answer = post_login(client, tenant.admin_email, tenant.password, next_path=next_path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/", next_path
        client.cookies.clear()


def test_safe_next_and_login_url() -> None:
    assert safe_next("/segments/3?tab=members") == "/segments/3?tab=members"
    assert safe_next(None) == safe_next("") == safe_next("http://x/") == safe_next("///x") == "/"
    assert login_url("/") == "/login"
    assert login_url("/customers?q=a b") == "/login?next=/customers%3Fq%3Da%20b"


def test_a_wrong_password_or_unknown_email_get_the_same_answer_and_no_session(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    wrong_password = post_login(client, tenant.admin_email, "not-the-password")
    unknown_email = post_login(client, "nobody@acme.test", tenant.password)
    for answer in (wrong_password, unknown_email):
        assert answer.status_code == 200
        assert "Wrong email or password. Please try again." in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert _session_rows(runtime) == 0
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_sets_a_strict_session_cookie_and_opens_the_dashboard(
    client: TestClient, tenant: Tenant
) -> None:
    answer = post_login(client, tenant.admin_email, tenant.password)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}="))
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    assert "secure" not in attributes
    page = client.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.text and "admin@acme.test" in page.text
    assert client.get("/login", follow_redirects=False).headers["location"] == "/"


def test_the_session_cookie_is_secure_when_configured(runtime: Runtime, tenant: Tenant) -> None:
    settings = runtime.settings.model_copy(update={"secure_cookies": True})
    secure_runtime = dataclasses.replace(runtime, settings=settings)
    app = create_app(settings, runtime=secure_runtime, start_worker=False)
    with TestClient(app, base_url="https://testserver") as client:
        answer = post_login(client, tenant.admin_email, tenant.password)
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}="))
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


def test_the_login_form_needs_its_signed_double_submit_token(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    credentials = {"email": tenant.admin_email, "password": tenant.password}
    assert client.post("/login", data=credentials, follow_redirects=False).status_code == 403
    token = hidden_field(client.get("/login").text, "login_token")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.post("/login", data={**credentials, "login_token": tampered}).status_code == 403
    # A valid token without the cookie it was issued with (another browser) is refused too.
    with TestClient(client.app) as stranger:
        refused = stranger.post("/login", data={**credentials, "login_token": token}, follow_redirects=False)
        assert refused.status_code == 403
        assert "login form expired" in refused.text
    assert _session_rows(runtime) == 0
    ok = client.post("/login", data={**credentials, "login_token": token}, follow_redirects=False)
    assert ok.status_code == 303


def test_a_user_of_no_workspace_is_told_so(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    with runtime.sessions() as db:
        accounts_service.create_user(db, email="loner@acme.test", password=tenant.password)
        db.commit()
    answer = post_login(client, "loner@acme.test", tenant.password)
    assert answer.status_code == 200
    assert "not a member of any workspace" in answer.text


def test_logout_ends_the_session_for_good(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    stolen = client.cookies.get(SESSION_COOKIE)
    assert _session_rows(runtime) == 1
    answer = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert _session_rows(runtime) == 0
    assert "You have logged out." in client.get("/login").text
    with TestClient(client.app, cookies={SESSION_COOKIE: stolen or ""}) as replay:
        assert replay.get("/", follow_redirects=False).status_code == 303


def test_an_expired_session_goes_back_to_login(
    client: TestClient, tenant: Tenant, runtime: Runtime, clock: FakeClock
) -> None:
    ui_login(client, tenant.admin_email, tenant.password)
    clock.advance(timedelta(seconds=runtime.settings.session_max_age_seconds - 60))
    assert client.get("/", follow_redirects=False).status_code == 200
    clock.advance(timedelta(seconds=120))
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_the_session_works_on_the_json_api_with_its_csrf_header(client: TestClient, tenant: Tenant) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    assert client.get("/api/v1/workspace").json()["slug"] == "acme"
    body = {"kind": "write", "name": "from htmx"}
    assert client.post("/api/v1/keys", json=body).status_code == 403
    created = client.post("/api/v1/keys", json=body, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201
    assert csrf == csrf_of(client.get("/settings/keys").text)
