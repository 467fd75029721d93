"""The segment builder in a real chromium against a real ``rapport serve`` with demo customers: the visual
editor and the text form stay in sync through the server, counts follow, errors show where they are, and a
saved segment appears in the list with its size. Every page is screenshotted under test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from rapport.config import Settings
from rapport.runtime import build_runtime
from rapport.segments import parse, to_text
from rapport.synth.demo import fill_workspace
from tests.support.browser import PageWatch, screenshot
from tests.support.tenants import Tenant, make_tenant
from tests.web.conftest import UiServer, browser_login

pytestmark = pytest.mark.browser

CUSTOMERS = 150


@pytest.fixture(scope="module")
def shop(ui_server: UiServer) -> Iterator[Tenant]:
    """A third workspace on the browser tests' server, filled with demo customers and a year of events."""
    runtime = build_runtime(
        Settings(database_url=ui_server.database_url, secret_key="seed-secret-0123456789", db_pool_size=1)
    )
    try:
        tenant = make_tenant(runtime, "segshop")
        fill_workspace(
            runtime, workspace_id=tenant.workspace_id, customers=CUSTOMERS, seed=5, show_progress=False
        )
    finally:
        runtime.close()
    yield tenant


def _count(page: Page) -> int:
    value = page.get_by_test_id("live-count").get_attribute("data-count")
    assert value is not None
    return int(value)


def _wait_synced(page: Page) -> None:
    expect(page.locator("#segment-form")).to_have_attribute("data-sync", re.compile("ok|error|empty"))
    expect(page.locator("#segment-form")).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#seg-sync-state")).not_to_have_text("Updating…")


def _rows(page: Page) -> Locator:
    return page.get_by_test_id("visual-editor").locator(".seg-row")


def test_build_a_segment_visually_edit_its_text_fix_a_typo_and_save_it(
    watched_page: PageWatch, shop: Tenant
) -> None:
    page = watched_page.page
    browser_login(page, shop.admin_email, shop.password)
    page.get_by_role("link", name="Segments").click()
    expect(page.get_by_role("heading", name="Segments", level=1)).to_be_visible()
    expect(page.get_by_text("No segments yet")).to_be_visible()
    screenshot(page, "segments-empty")
    page.get_by_role("link", name="New segment").first.click()
    expect(page.get_by_role("heading", name="New segment", level=1)).to_be_visible()
    text = page.get_by_label("Segment definition as text")

    # a customer field from the workspace's catalogue: city = "London"
    page.get_by_role("button", name="Add a condition").click()
    first = _rows(page).nth(0)
    expect(first.get_by_label("Condition", exact=True)).to_be_focused()  # keyboard users land on the new row
    first.get_by_label("Field", exact=True).fill("city")
    first.get_by_label("Field", exact=True).press("Tab")
    expect(first.get_by_label("Operator", exact=True)).to_have_value("=")
    first.get_by_label("Value", exact=True).fill("London")
    expect(text).to_have_value('city = "London"')
    _wait_synced(page)
    london = _count(page)
    assert 0 < london < CUSTOMERS
    expect(page.locator("#seg-sample tr")).to_have_count(min(20, london))

    # AND purchased at least once in the last 365 days
    page.get_by_role("button", name="Add a condition").click()
    second = _rows(page).nth(1)
    second.get_by_label("Condition", exact=True).select_option("did")
    expect(second.get_by_label("Event", exact=True)).to_have_value("order_completed")
    second.get_by_label("When", exact=True).select_option("in last")
    second.get_by_label("Amount", exact=True).fill("365")
    expect(text).to_have_value('city = "London" and purchased in last 365 days')
    _wait_synced(page)
    buyers = _count(page)
    assert 0 < buyers < london
    expect(page.get_by_test_id("live-count")).to_have_text(f"{buyers:,}")
    screenshot(page, "segment-builder-visual")

    # edit the text: the visual editor follows
    text.fill('city = "Leeds" or purchased at least 3 times in last 365 days')
    expect(page.get_by_label("People who match", exact=True)).to_have_value("or")
    expect(_rows(page).nth(0).get_by_label("Value", exact=True)).to_have_value("Leeds")
    expect(_rows(page).nth(1).get_by_label("How often", exact=True)).to_have_value("at least")
    expect(_rows(page).nth(1).get_by_label("Times", exact=True)).to_have_value("3")
    _wait_synced(page)
    assert _count(page) != buyers
    screenshot(page, "segment-builder-text-edited")

    # a typo in the text: marked where it is, with the nearest field, fixable in one click
    text.fill('cty = "Leeds"\n  and purchased in last 365 days')
    message = page.get_by_test_id("text-error-message")
    expect(message).to_have_text("Line 1, column 1: unknown field 'cty'")
    expect(page.get_by_test_id("suggestion")).to_contain_text("Did you mean “city”?")
    expect(page.locator("#seg-text-mirror mark")).to_have_text("cty")
    expect(text).to_have_attribute("aria-invalid", "true")
    screenshot(page, "segment-builder-text-error")
    page.get_by_role("button", name="Use “city”").click()
    expect(text).to_have_value('city = "Leeds"\n  and purchased in last 365 days')
    expect(message).to_have_count(0)
    expect(_rows(page)).to_have_count(2)
    _wait_synced(page)

    # a typo in the visual editor: the message sits under its row
    field = _rows(page).nth(0).get_by_label("Field", exact=True)
    field.fill("citty")
    row_error = _rows(page).nth(0).get_by_test_id("row-error")
    expect(row_error).to_contain_text("unknown field 'citty' (did you mean 'city'?)")
    expect(_rows(page).nth(0)).to_have_class(re.compile("has-error"))
    screenshot(page, "segment-builder-row-error")
    row_error.get_by_role("button", name="Use “city”").click()
    expect(_rows(page).nth(0).get_by_label("Field", exact=True)).to_have_value("city")
    expect(row_error).to_have_text("")
    expect(text).to_have_value('city = "Leeds" and purchased in last 365 days')
    _wait_synced(page)
    leeds_buyers = _count(page)

    page.get_by_label("Name", exact=True).fill("Leeds buyers")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("heading", name="Leeds buyers", level=1)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Segment “Leeds buyers” saved with")
    _wait_synced(page)
    assert _count(page) == leeds_buyers
    screenshot(page, "segment-saved")

    page.get_by_role("link", name="Segments").click()
    size = page.get_by_role("link", name=f"{leeds_buyers} members of Leeds buyers")
    expect(size).to_have_text(f"{leeds_buyers:,}")
    screenshot(page, "segments-list")
    size.click()
    expect(page.get_by_role("heading", name="Members of “Leeds buyers”")).to_be_visible()
    expect(page.get_by_test_id("members-table").locator("tbody tr")).to_have_count(min(50, leeds_buyers))
    screenshot(page, "segment-members")


def test_groups_not_and_other_conditions_print_and_parse_back(watched_page: PageWatch, shop: Tenant) -> None:
    page = watched_page.page
    browser_login(page, shop.admin_email, shop.password)
    page.goto("/segments/new")
    text = page.get_by_label("Segment definition as text")
    text.fill(
        'within 5 km of store "Leeds Briggate" and not (subscribed to email or email.opened in last 30 days)'
        ' and did "order_completed" where amount > 50 at least 1 time and random bucket < 50% seed "ui"'
    )
    _wait_synced(page)
    expect(page.locator("#segment-form")).to_have_attribute("data-sync", "ok")
    groups = page.get_by_test_id("visual-editor").locator(".seg-group .seg-group")
    expect(groups).to_have_count(2)  # the not(...) group and the where clause
    expect(_rows(page).nth(0).get_by_label("Store", exact=True)).to_have_value("Leeds Briggate")
    nested = groups.nth(0)
    expect(nested.get_by_label("Group: match", exact=True)).to_have_value("or")
    expect(nested.get_by_label("not").first).to_be_checked()
    where = page.locator(".seg-where")
    expect(where.get_by_label("Property", exact=True)).to_have_value("amount")
    expect(where.get_by_label("Value", exact=True)).to_have_value("50")

    # change the nested group to "all of these": the text follows with the same structure
    nested.get_by_label("Group: match", exact=True).select_option("and")
    expect(text).to_have_value(
        'within 5 km of store "Leeds Briggate" and not (subscribed to email and email.opened in last 30 days)'
        ' and purchased where amount > 50 and random bucket < 50% seed "ui"'
    )
    _wait_synced(page)
    screenshot(page, "segment-builder-groups")


#: One definition per kind of condition and option the visual editor models.
ROUND_TRIPS = [
    'loyalty_tier in ("gold", "silver") and latitude >= 51.5 and signup_date < 2025-06-01'
    " and (phone is not set or email is set)",
    "contract_end in next 30 days and birthday anniversary is today"
    " or signup_date more than 365 days ago and birthday anniversary in last 7 days",
    'did "product_viewed" where (price > 20 and (category = "shoes" or not brand is set))'
    ' at most 2 times in last 48 hours and did not "order_completed" between 2025-01-01 and 2025-03-31'
    " and purchased exactly 2 times ever",
    'first did "signed_up" before 2025-01-01 and last purchased less than 30 days ago'
    ' and last did "product_viewed" where url contains "/sale" after 2025-06-30',
    'message.clicked campaign "Spring sale" at least 2 times and email.opened in last 30 days'
    " and subscribed to email and unsubscribed from sms",
    'within 2.5 km of (53.8, -1.55) or within 5 km of store "Leeds Briggate"'
    ' or random bucket < 10% and random bucket >= 50% seed "ab"',
    'not not city = "York"',
    'not (city = "Leeds" and (postcode starts with "LS" or not region = "North"))',
]


def test_every_kind_of_condition_survives_text_to_visual_to_text(
    watched_page: PageWatch, shop: Tenant
) -> None:
    page = watched_page.page
    browser_login(page, shop.admin_email, shop.password)
    page.goto("/segments/new")
    text = page.get_by_label("Segment definition as text")
    top_not = page.locator(".seg-group--top > .seg-group__head").get_by_label("not", exact=True)
    for definition in ROUND_TRIPS:
        canonical = to_text(parse(definition))
        text.fill(definition)
        _wait_synced(page)
        expect(page.locator("#segment-form")).to_have_attribute("data-sync", "ok")
        # the visual editor writes its own AST: negate everything, then take it back
        top_not.check()
        expect(text).to_have_value(to_text(parse(f"not ({definition})")))
        _wait_synced(page)
        top_not.uncheck()
        expect(text).to_have_value(canonical)
        _wait_synced(page)
        expect(page.locator("#segment-form")).to_have_attribute("data-sync", "ok")
    screenshot(page, "segment-builder-round-trip")


def test_the_builder_works_at_phone_width(browser_context_phone: PageWatch, shop: Tenant) -> None:
    page = browser_context_phone.page
    browser_login(page, shop.admin_email, shop.password)
    page.goto("/segments/new")
    page.get_by_label("Segment definition as text").fill('city = "London" and purchased in last 365 days')
    _wait_synced(page)
    expect(_rows(page)).to_have_count(2)
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('main *')).filter(e => e.getBoundingClientRect().right > 376)"
        ".slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)"
    )
    assert width <= 375, f"the page scrolls sideways at 375 px ({width} px): {wide}"
    screenshot(page, "segment-builder-phone")
    page.goto("/segments")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "segments-list-phone")


def test_a_condition_can_be_built_with_the_keyboard_alone(watched_page: PageWatch, shop: Tenant) -> None:
    page = watched_page.page
    browser_login(page, shop.admin_email, shop.password)
    page.goto("/segments/new")
    page.get_by_role("button", name="Add a condition").focus()
    page.keyboard.press("Enter")
    row = _rows(page).nth(0)
    expect(row.get_by_label("Condition", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(row.get_by_label("Field", exact=True)).to_be_focused()
    page.keyboard.type("loyalty_tier")
    page.keyboard.press("Tab")
    expect(row.get_by_label("Operator", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(row.get_by_label("Value", exact=True)).to_be_focused()
    page.keyboard.type("gold")
    page.keyboard.press("Enter")  # updates at once, does not submit the form
    expect(page.get_by_label("Segment definition as text")).to_have_value('loyalty_tier = "gold"')
    expect(page).to_have_url(re.compile(r"/segments/new$"))
    _wait_synced(page)
    assert _count(page) >= 0


def test_a_viewer_can_try_conditions_but_not_save(watched_page: PageWatch, shop: Tenant) -> None:
    page = watched_page.page
    browser_login(page, shop.viewer_email, shop.password)
    page.goto("/segments/new")
    expect(page.get_by_test_id("read-only-note")).to_be_visible()
    page.get_by_label("Segment definition as text").fill('city = "York"')
    _wait_synced(page)
    assert _count(page) >= 0
    expect(page.get_by_test_id("save-segment")).to_have_count(0)
    screenshot(page, "segment-builder-viewer")
