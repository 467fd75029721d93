"""The marketer UI in a real chromium against a real ``rapport serve``: every page is screenshotted under
test-artifacts/ and a console error or uncaught exception on any page fails its test."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.browser import PageWatch, screenshot
from tests.web.conftest import UiServer, browser_login

pytestmark = pytest.mark.browser


def test_wrong_password_shows_an_error_and_the_right_one_lands_on_the_dashboard(
    watched_page: PageWatch, ui_server: UiServer
) -> None:
    page = watched_page.page
    page.goto("/settings/keys")
    expect(page).to_have_url(re.compile(r"/login\?next=/settings/keys$"))
    page.get_by_label("Email").fill(ui_server.tenant.admin_email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password. Please try again.")
    screenshot(page, "login-wrong-password")

    page.get_by_label("Password").fill(ui_server.tenant.password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{ui_server.url}/settings/keys")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page.locator(".topbar .workspace")).to_have_text("Acme")
    expect(page.get_by_test_id("members-count")).to_have_text(re.compile(r"^[1-9][0-9]*$"))
    screenshot(page, "dashboard")


def test_the_chart_renders_from_the_series_endpoint_and_follows_the_range(
    watched_page: PageWatch, ui_server: UiServer
) -> None:
    page = watched_page.page
    with page.expect_response(lambda r: "/ui/api/dashboard/series" in r.url) as first:
        browser_login(page, ui_server.tenant.admin_email, ui_server.tenant.password)
    assert first.value.status == 200
    canvas = page.locator("canvas#activity-chart")
    expect(canvas).to_have_attribute("data-chart-state", "ready")
    expect(canvas).to_have_attribute("data-chart-points", "30")
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150
    assert first.value.json()["total"] >= 4  # the seeded keys and roles are audited
    expect(page.locator("#activity-chart-summary")).to_contain_text("Audit entries per day:")

    with page.expect_response(lambda r: "/ui/api/dashboard/series" in r.url) as second:
        page.get_by_role("button", name="7 days").click()
    today = datetime.now(UTC).date()
    assert f"from={(today - timedelta(days=6)).isoformat()}" in second.value.url
    expect(canvas).to_have_attribute("data-chart-points", "7")
    screenshot(page, "dashboard-chart-7-days")


def test_an_admin_creates_a_secret_key_sees_it_once_and_revokes_it(
    watched_page: PageWatch, ui_server: UiServer
) -> None:
    page = watched_page.page
    browser_login(page, ui_server.tenant.admin_email, ui_server.tenant.password)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()

    page.get_by_role("radio", name=re.compile(r"^Secret key")).check()
    page.get_by_label("Name", exact=True).fill("warehouse sync")
    page.get_by_role("checkbox", name=re.compile(r"^profiles:read")).check()
    page.get_by_role("checkbox", name=re.compile(r"^segments:read")).check()
    page.get_by_role("button", name="Create key").click()

    shown = page.get_by_test_id("new-key")
    expect(shown).to_have_text(re.compile(r"^sk_[A-Za-z0-9_-]{20,}$"))
    plain = shown.inner_text()
    row = page.locator("tr", has_text="warehouse sync")
    expect(row).to_contain_text(plain[:10])
    expect(row).to_contain_text("profiles:read")
    screenshot(page, "settings-key-created")
    assert httpx.get(
        f"{ui_server.url}/api/v1/workspace", headers={"Authorization": f"Bearer {plain}"}
    ).is_success

    page.goto("/settings/keys")
    assert plain not in page.content()
    row = page.locator("tr", has_text="warehouse sync")
    row.get_by_text("Revoke…").click()
    screenshot(page, "settings-key-revoke-confirm")
    row.get_by_role("button", name="Yes, revoke").click()
    expect(page.locator(".alert--success")).to_contain_text("warehouse sync")
    expect(page.locator("tr", has_text="warehouse sync")).to_have_count(0)
    answer = httpx.get(f"{ui_server.url}/api/v1/workspace", headers={"Authorization": f"Bearer {plain}"})
    assert answer.status_code == 401
    screenshot(page, "settings-key-revoked")


def test_a_viewer_sees_no_change_buttons_and_a_forged_post_is_refused(
    watched_page: PageWatch, ui_server: UiServer
) -> None:
    page = watched_page.page
    browser_login(page, ui_server.tenant.viewer_email, ui_server.tenant.password)
    page.goto("/settings/keys")
    expect(page.get_by_test_id("keys-table")).to_be_visible()
    expect(page.get_by_role("button", name="Create key")).to_have_count(0)
    expect(page.get_by_text("Revoke…")).to_have_count(0)
    expect(page.get_by_text("Only admins can create or revoke keys.")).to_be_visible()
    screenshot(page, "settings-keys-viewer")
    page.goto("/settings/users")
    expect(page.get_by_role("button", name="Add user")).to_have_count(0)
    expect(page.locator("select")).to_have_count(0)

    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    forged = page.request.post(
        "/settings/keys", form={"csrf_token": token, "kind": "secret", "name": "forged", "scopes": "admin"}
    )
    assert forged.status == 403
    assert "cannot change keys" in forged.text()
    page.goto("/settings/keys")
    expect(page.locator("tr", has_text="forged")).to_have_count(0)


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(ui_server: UiServer) -> None:
    with httpx.Client(base_url=ui_server.url) as client:
        form = client.get("/login")
        login_token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert login_token
        answer = client.post(
            "/login",
            data={
                "email": ui_server.tenant.admin_email,
                "password": ui_server.tenant.password,
                "login_token": login_token.group(1),
            },
        )
        assert answer.status_code == 303
        for data in ({"kind": "write", "name": "no token"}, {"kind": "write", "csrf_token": "wrong"}):
            refused = client.post("/settings/keys", data=data)
            assert refused.status_code == 403
            assert "text/html" in refused.headers["content-type"]
        refused = client.post("/logout")
        assert refused.status_code == 403
        assert client.get("/", follow_redirects=False).status_code == 200  # still logged in


def test_logout_from_the_user_menu(watched_page: PageWatch, ui_server: UiServer) -> None:
    page = watched_page.page
    browser_login(page, ui_server.tenant.admin_email, ui_server.tenant.password)
    page.locator(".usermenu summary").click()
    screenshot(page, "user-menu-open")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{ui_server.url}/login")
    expect(page.locator(".alert--info")).to_have_text("You have logged out.")
    page.goto("/")
    expect(page).to_have_url(f"{ui_server.url}/login")


def test_every_section_renders_cleanly(watched_page: PageWatch, ui_server: UiServer) -> None:
    page = watched_page.page
    browser_login(page, ui_server.tenant.admin_email, ui_server.tenant.password)
    for label in ["Customers", "Segments", "Templates", "Campaigns", "Data"]:
        page.get_by_role("navigation", name="Main").get_by_role("link", name=label).click()
        expect(page.get_by_role("heading", name=label, level=1)).to_be_visible()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name=label, exact=True)).to_have_attribute("aria-current", "page")
        screenshot(page, f"section-{label.lower()}")
    for tab in ["Users & roles", "Audit log", "Channels", "Caps & quiet hours", "Topics"]:
        page.goto("/settings")
        page.get_by_role("navigation", name="Settings").get_by_role("link", name=tab).click()
        expect(page.get_by_role("link", name=tab)).to_have_attribute("aria-current", "page")
        screenshot(page, f"settings-{tab.split()[0].lower()}")
    expect(page.get_by_test_id("audit-table")).to_have_count(0)  # channels page has no table


def test_the_dashboard_fits_a_375px_phone(browser_context_phone: PageWatch, ui_server: UiServer) -> None:
    page = browser_context_phone.page
    browser_login(page, ui_server.tenant.admin_email, ui_server.tenant.password)
    expect(page.locator("canvas#activity-chart")).to_have_attribute("data-chart-state", "ready")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways: {width}px wide"
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    screenshot(page, "dashboard-375px")
    page.goto("/settings/keys")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "settings-keys-375px")


def test_the_keyboard_reaches_the_content_and_the_menu(watched_page: PageWatch, ui_server: UiServer) -> None:
    page = watched_page.page
    browser_login(page, ui_server.tenant.admin_email, ui_server.tenant.password)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
    # the chart writes its range into the address once it has (re)loaded: the skip link's fragment stays
    # (it once raced the first load, which wrote the address without it)
    chart = page.locator("canvas#activity-chart")
    expect(chart).to_have_attribute("data-chart-state", "ready")
    page.evaluate("document.querySelector('form[data-chart-range=\"activity-chart\"]').requestSubmit()")
    expect(chart).to_have_attribute("data-chart-state", "ready")
    expect(page).to_have_url(re.compile(r"\?metric=[^#]*#main$"))
    page.locator(".usermenu summary").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Log out")).to_be_hidden()
    outline = page.evaluate(
        "(() => { const a = document.querySelector('.mainnav a'); a.focus({focusVisible: true});"
        " return getComputedStyle(a).outlineStyle; })()"
    )
    assert outline != "none"


def test_an_admin_adds_a_user_and_changes_the_role_in_place_with_htmx(
    watched_page: PageWatch, ui_server: UiServer
) -> None:
    page = watched_page.page
    browser_login(page, ui_server.tenant.admin_email, ui_server.tenant.password)
    page.goto("/settings/users")
    form = page.locator("form", has=page.get_by_role("button", name="Add user"))
    form.get_by_label("Email").fill("noor@acme.test")
    form.get_by_label("Name").fill("Noor")
    form.get_by_label("Password").fill("noor-password-1")
    form.get_by_label("Role").select_option("viewer")
    form.get_by_role("button", name="Add user").click()
    expect(page.locator(".alert--success")).to_have_text("noor@acme.test now has the viewer role.")

    row = page.locator("tr", has_text="noor@acme.test")
    row.get_by_label("Role of noor@acme.test").select_option("marketer")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    with page.expect_request(lambda r: r.url.endswith("/role") and r.method == "POST") as sent:
        row.get_by_role("button", name="Save").click()
    assert sent.value.headers.get("x-csrf-token") == token
    assert sent.value.headers.get("hx-request") == "true"
    expect(row.get_by_role("status")).to_have_text("noor@acme.test now has the marketer role.")
    expect(page.locator(".alert--success")).to_have_count(1)  # swapped in place: no reload, old flash stays
    screenshot(page, "settings-users-role-changed")

    with httpx.Client(base_url=ui_server.url) as noor:
        form_page = noor.get("/login")
        login_token = re.search(r'name="login_token" value="([^"]+)"', form_page.text)
        assert login_token
        noor.post(
            "/login",
            data={
                "email": "noor@acme.test",
                "password": "noor-password-1",
                "login_token": login_token.group(1),
            },
        )
        assert 'badge--marketer">marketer' in noor.get("/").text
