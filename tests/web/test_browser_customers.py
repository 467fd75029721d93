"""Customers and the dashboard in a real chromium against ``rapport serve``, over a workspace filled by the
demo generator (a few hundred synthetic customers with a year of events, consent and scores). Every page
is screenshotted under test-artifacts/; a console error or uncaught exception fails its test."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from rapport.app import wire_runtime
from rapport.config import Settings
from rapport.models import Event, Profile
from rapport.process import scores_service
from rapport.runtime import build_runtime
from rapport.synth import demo as synth_demo
from tests.support.browser import PageWatch, screenshot
from tests.support.tenants import Tenant, make_tenant
from tests.web.conftest import UiServer, browser_login

pytestmark = pytest.mark.browser

DEMO_CUSTOMERS = 300


@dataclass(frozen=True)
class DemoShop:
    """The demo workspace and two of its customers: a busy one and one to erase."""

    tenant: Tenant
    total: int
    busy_id: int
    busy_name: str
    busy_events: int
    erasable_id: int
    erasable_email: str


@pytest.fixture(scope="module")
def shop(ui_server: UiServer) -> Iterator[DemoShop]:
    """A third workspace in the server's database, filled by the demo generator and scored."""
    runtime = wire_runtime(
        build_runtime(Settings(database_url=ui_server.database_url, secret_key="seed-secret-0123456789"))
    )
    try:
        tenant = make_tenant(runtime, "shop")
        synth_demo.fill_workspace(
            runtime, workspace_id=tenant.workspace_id, customers=DEMO_CUSTOMERS, seed=11, show_progress=False
        )
        scores_service.run_scores(runtime, tenant.workspace_id, ["rfm", "clv"], runtime.clock.now())
        with runtime.read_sessions() as db:
            total = db.scalar(
                select(func.count()).where(
                    Profile.workspace_id == tenant.workspace_id, Profile.merged_into_id.is_(None)
                )
            )
            counts = (
                select(Event.profile_id, func.count().label("n"))
                .where(Event.workspace_id == tenant.workspace_id)
                .group_by(Event.profile_id)
                .subquery()
            )
            busy = db.execute(
                select(Profile.id, Profile.name, counts.c.n)
                .join(counts, counts.c.profile_id == Profile.id)
                .where(Profile.name.is_not(None), Profile.email.is_not(None))
                .order_by(counts.c.n.desc(), Profile.id)
                .limit(1)
            ).one()
            erasable = db.execute(
                select(Profile.id, Profile.email)
                .where(
                    Profile.workspace_id == tenant.workspace_id,
                    Profile.email.is_not(None),
                    Profile.id != busy.id,
                )
                .order_by(Profile.id.desc())
                .limit(1)
            ).one()
        yield DemoShop(tenant, int(total or 0), busy.id, busy.name, int(busy.n), erasable.id, erasable.email)
    finally:
        runtime.close()


def _login(page: Page, shop: DemoShop) -> None:
    browser_login(page, shop.tenant.admin_email, shop.tenant.password)


def test_search_a_demo_customer_and_read_the_profile(watched_page: PageWatch, shop: DemoShop) -> None:
    page = watched_page.page
    _login(page, shop)
    page.get_by_role("link", name="Customers", exact=True).click()
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
    expect(page.get_by_test_id("customers-total")).to_have_text(f"{shop.total} customers")
    screenshot(page, "customers-list")

    first_name = shop.busy_name.split()[0]
    page.get_by_label("Search by name, email, phone or id").fill(first_name.lower())
    page.get_by_role("button", name="Search").click()
    results = page.get_by_test_id("customer-results")
    expect(results.get_by_role("link", name=shop.busy_name)).to_be_visible()
    names = results.locator("tbody tr td:first-child a").all_inner_texts()
    assert names and all(n.lower().startswith(first_name.lower()) for n in names)
    screenshot(page, "customers-search")

    results.get_by_role("link", name=shop.busy_name).first.click()
    expect(page).to_have_url(re.compile(rf"/customers/{shop.busy_id}$"))
    expect(page.get_by_role("heading", name=shop.busy_name, level=1)).to_be_visible()
    scores = page.get_by_test_id("scores")
    expect(scores).to_contain_text("RFM segment")
    expect(scores).to_contain_text("Loyalty level")
    expect(page.get_by_test_id("consent")).to_contain_text(re.compile(r"subscribed|unsubscribed|Never asked"))
    expect(page.get_by_test_id("identities")).to_contain_text("user_id")
    timeline = page.get_by_test_id("timeline-event")
    expect(timeline).to_have_count(min(25, shop.busy_events))
    screenshot(page, "customer-profile")

    assert shop.busy_events > 25, "the busiest demo customer should need a second timeline page"
    page.get_by_test_id("timeline-more").click()
    expect(timeline).to_have_count(min(50, shop.busy_events))
    expect(page).to_have_url(re.compile(rf"/customers/{shop.busy_id}$"))  # htmx swapped rows in place
    page.get_by_label("Type").select_option("identify")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"type=identify"))
    expect(page.locator("#timeline")).to_contain_text(re.compile(r"identify|No events of this kind"))
    screenshot(page, "customer-timeline-filtered")


def test_export_downloads_the_gdpr_json(watched_page: PageWatch, shop: DemoShop) -> None:
    page = watched_page.page
    _login(page, shop)
    page.goto(f"/customers/{shop.busy_id}")
    with page.expect_download() as download:
        page.get_by_role("button", name="Export data (JSON)").click()
    assert download.value.suggested_filename == f"customer-{shop.busy_id}-export.json"
    path = download.value.path()
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["profile"]["id"] == shop.busy_id
    assert len(data["events"]) == shop.busy_events


def test_the_dashboard_charts_demo_data(watched_page: PageWatch, shop: DemoShop) -> None:
    page = watched_page.page
    with page.expect_response(lambda r: "/ui/api/dashboard/series" in r.url) as first:
        _login(page, shop)
    assert first.value.status == 200
    assert first.value.json()["metric"] == "messages_delivered"  # the demo has deliveries, no sends
    canvas = page.locator("canvas#activity-chart")
    expect(canvas).to_have_attribute("data-chart-state", "ready")
    expect(canvas).to_have_attribute("data-chart-points", "30")
    expect(page.get_by_test_id("customers-count")).to_have_text(str(shop.total))
    rfm = page.get_by_test_id("rfm-bars")
    expect(rfm.locator("tbody tr")).not_to_have_count(0)
    widths = rfm.locator("rect").evaluate_all("rects => rects.map(r => r.getBBox().width)")
    assert max(widths) == pytest.approx(100.0)
    expect(page.get_by_test_id("consent-rates")).to_contain_text("Email")
    expect(page.get_by_test_id("campaign-revenue")).to_contain_text("Revenue attributed")

    with page.expect_response(lambda r: "metric=messages_opened" in r.url) as opened:
        page.get_by_label("Metric").select_option("messages_opened")
    assert opened.value.json()["label"] == "Messages opened per day"
    with page.expect_response(lambda r: "/ui/api/dashboard/series" in r.url):
        page.get_by_role("button", name="90 days").click()
    expect(canvas).to_have_attribute("data-chart-points", "90")
    expect(canvas).to_have_attribute("data-chart-state", "ready")
    screenshot(page, "dashboard-demo")


def test_customers_and_dashboard_fit_a_375px_phone(browser_context_phone: PageWatch, shop: DemoShop) -> None:
    page = browser_context_phone.page
    _login(page, shop)
    expect(page.locator("canvas#activity-chart")).to_have_attribute("data-chart-state", "ready")
    for path, name in (
        ("/", "dashboard-demo-375px"),
        ("/customers", "customers-list-375px"),
        (f"/customers/{shop.busy_id}", "customer-profile-375px"),
    ):
        if path != "/":
            page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} scrolls sideways: {width}px wide"
        screenshot(page, name)


# Last: it removes a customer from the shared demo workspace.
def test_an_admin_erases_a_customer_after_typing_the_email(watched_page: PageWatch, shop: DemoShop) -> None:
    page = watched_page.page
    _login(page, shop)
    page.goto(f"/customers/{shop.erasable_id}")
    page.get_by_role("link", name="Erase…").click()
    expect(page.get_by_role("heading", name="This cannot be undone")).to_be_visible()
    field = page.get_by_label(re.compile(r"^Type .* to confirm"))
    field.fill("someone-else@example.com")
    page.get_by_role("button", name="Erase this customer").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was erased.")
    screenshot(page, "customer-erase-refused")

    page.get_by_label(re.compile(r"^Type .* to confirm")).fill(shop.erasable_email)
    page.get_by_role("button", name="Erase this customer").click()
    expect(page).to_have_url(re.compile(r"/customers$"))
    expect(page.get_by_role("status")).to_contain_text(f"Customer #{shop.erasable_id} is erased")
    screenshot(page, "customer-erased")
    page.get_by_label("Search by name, email, phone or id").fill(shop.erasable_email)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("no-results")).to_be_visible()
