"""Data and Settings in a real chromium against ``rapport serve``: upload a CSV, map its columns, watch the
import finish (htmx polling) and find the customers; change a frequency cap. Every page is screenshotted
under test-artifacts/; a console error or uncaught exception fails its test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from rapport.accounts import service as accounts_service
from rapport.config import Settings
from rapport.messaging.caps import Cap, caps_from_settings
from rapport.runtime import build_runtime
from tests.support.browser import PageWatch, screenshot
from tests.support.tenants import Tenant, make_tenant
from tests.web.conftest import UiServer, browser_login

pytestmark = pytest.mark.browser

CSV = (
    "Customer ID,Email,Full name,Loyalty tier,Shop ref\n"
    "d-1,dora@data.test,Dora Data,gold,S-1\n"
    "d-2,dan@data.test,Dan Data,silver,S-2\n"
    "d-3,oops,Broken Row,bronze,S-3\n"
)


@pytest.fixture(scope="module")
def data_tenant(ui_server: UiServer) -> Iterator[Tenant]:
    """A workspace of its own in the server's database (caps and imports do not touch other tests)."""
    runtime = build_runtime(
        Settings(database_url=ui_server.database_url, secret_key="seed-secret-0123456789")
    )
    try:
        yield make_tenant(runtime, "dataco")
    finally:
        runtime.close()


def _caps(ui_server: UiServer, tenant: Tenant) -> list[Cap]:
    runtime = build_runtime(
        Settings(database_url=ui_server.database_url, secret_key="seed-secret-0123456789")
    )
    try:
        with runtime.sessions() as db:
            return caps_from_settings(accounts_service.get_workspace(db, tenant.workspace_id).settings)
    finally:
        runtime.close()


def _import(page: Page, tmp_path: Path) -> None:
    page.goto("/data")
    expect(page.get_by_role("heading", name="Data", level=1)).to_be_visible()
    page.get_by_role("link", name="Imports").first.click()
    csv_path = tmp_path / "loyalty-members.csv"
    csv_path.write_text(CSV, encoding="utf-8")
    page.get_by_label("CSV file").set_input_files(str(csv_path))
    page.get_by_role("button", name="Upload and map columns").click()
    expect(
        page.get_by_role("heading", name=re.compile("Map the columns of loyalty-members.csv"))
    ).to_be_visible()
    # The guesses: id → user id, Email → email, the rest traits named after the header.
    expect(page.get_by_label("What “Customer ID” is")).to_have_value("id:user_id")
    expect(page.get_by_label("What “Email” is")).to_have_value("id:email")
    page.get_by_label("What “Shop ref” is").select_option("id:external")
    page.get_by_label("Name for “Shop ref”").fill("shop")
    page.get_by_label("Name for “Loyalty tier”").fill("tier")


def test_a_csv_is_mapped_imported_and_its_customers_appear(
    watched_page: PageWatch, data_tenant: Tenant, tmp_path: Path
) -> None:
    page = watched_page.page
    browser_login(page, data_tenant.admin_email, data_tenant.password)
    _import(page, tmp_path)
    screenshot(page, "data-import-mapping")
    page.get_by_role("button", name="Start the import").click()
    expect(page.get_by_role("heading", name=re.compile(r"Import #\d+"))).to_be_visible()
    progress = page.locator("#import-progress")
    expect(progress).to_have_attribute("data-status", "done", timeout=20_000)
    counts = page.get_by_test_id("import-counts")
    expect(counts).to_contain_text("3 rows read")
    expect(counts).to_contain_text("2 imported")
    expect(counts).to_contain_text("1 refused")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the refused rows (CSV)").click()
    report = Path(info.value.path()).read_text(encoding="utf-8")
    assert report.splitlines() == ["row,column,reason", "3,email,not an email address"]
    screenshot(page, "data-import-finished")

    page.goto("/customers?q=dora%40data.test")
    expect(page.get_by_test_id("customer-results")).to_contain_text("dora@data.test")
    page.get_by_role("link", name=re.compile("Dora Data|dora@data.test")).first.click()
    expect(page.locator("body")).to_contain_text("gold")
    page.goto("/data/imports")
    expect(page.get_by_test_id("imports-table")).to_contain_text("loyalty-members.csv")
    screenshot(page, "data-imports-list")
    for path, name in [
        ("/data", "data-landing"),
        ("/data/traits", "data-traits"),
        ("/data/traits/new", "data-trait-new"),
        ("/data/lifestyle", "data-lifestyle"),
        ("/data/quarantine", "data-quarantine"),
    ]:
        page.goto(path)
        expect(page.locator("main h1")).to_be_visible()
        screenshot(page, name)


def test_an_admin_changes_a_frequency_cap(
    watched_page: PageWatch, data_tenant: Tenant, ui_server: UiServer
) -> None:
    page = watched_page.page
    browser_login(page, data_tenant.admin_email, data_tenant.password)
    page.goto("/settings")
    page.get_by_role("link", name="Caps & quiet hours").click()
    expect(page.get_by_label("SMS: send from")).to_have_value("08:00")
    expect(page.get_by_label("SMS: until")).to_have_value("21:00")
    page.get_by_label("Email: at most per week").fill("3")
    page.get_by_label("All channels together: at most per day").fill("2")
    page.get_by_role("button", name="Save caps").click()
    expect(page.get_by_text("Frequency caps are saved.")).to_be_visible()
    expect(page.get_by_label("Email: at most per week")).to_have_value("3")
    assert sorted(_caps(ui_server, data_tenant), key=repr) == sorted(
        [Cap("email", "week", 3), Cap("*", "day", 2)], key=repr
    )
    screenshot(page, "settings-limits")
    for path, name in [("/settings/channels", "settings-channels"), ("/settings/topics", "settings-topics")]:
        page.goto(path)
        expect(page.locator("main h1")).to_be_visible()
        screenshot(page, name)


def test_data_and_settings_pages_at_375_px(
    browser_context_phone: PageWatch, data_tenant: Tenant, tmp_path: Path
) -> None:
    page = browser_context_phone.page
    browser_login(page, data_tenant.admin_email, data_tenant.password)
    _import(page, tmp_path)
    for path, name in [(None, "data-import-mapping-375"), ("/data", "data-landing-375")]:
        if path:
            page.goto(path)
        screenshot(page, name)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{name} scrolls sideways ({width}px)"
    for path, name in [("/settings/limits", "settings-limits-375"), ("/data/traits", "data-traits-375")]:
        page.goto(path)
        screenshot(page, name)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{name} scrolls sideways ({width}px)"
