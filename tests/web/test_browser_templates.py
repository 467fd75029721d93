"""The template editor in a real chromium against ``rapport serve``: open a template, preview it as chosen
customers, edit the subject and HTML and watch the preview follow, see a syntax error at its line, save.
Every page is screenshotted under test-artifacts/; a console error or uncaught exception fails the test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Page, expect

from rapport.config import Settings
from rapport.runtime import build_runtime
from tests.content.data import add_profile
from tests.support.browser import PageWatch, screenshot
from tests.support.tenants import Tenant, make_tenant
from tests.web.conftest import UiServer, browser_login

pytestmark = pytest.mark.browser

HTML = (
    '<html><body>\n<h1 style="color:#0f5c63">Hello {{ first_name }}</h1>\n{{ blocks.hero }}\n</body></html>'
)


@dataclass(frozen=True)
class Shop:
    """A workspace with two customers and one email template with a rule block."""

    tenant: Tenant
    ada: int
    bob: int
    template_id: int


@pytest.fixture(scope="module")
def shop(ui_server: UiServer) -> Iterator[Shop]:
    """Seed the server's database with a workspace, two customers and a template (through the API)."""
    runtime = build_runtime(
        Settings(database_url=ui_server.database_url, secret_key="seed-secret-0123456789")
    )
    try:
        tenant = make_tenant(runtime, "tplshop")
        ada = add_profile(
            runtime,
            tenant.workspace_id,
            traits={"email": "ada@shop.test", "first_name": "Ada", "last_name": "Lovelace", "plan": "pro"},
        )
        bob = add_profile(
            runtime,
            tenant.workspace_id,
            traits={"email": "bob@shop.test", "first_name": "Bob", "last_name": "Baker", "plan": "free"},
        )
    finally:
        runtime.close()
    answer = httpx.post(
        f"{ui_server.url}/api/v1/templates",
        json={
            "name": "Spring newsletter",
            "channel": "email",
            "content": {"subject": "Hello {{ first_name }}", "preheader": "Fresh picks", "html": HTML},
            "blocks": [
                {
                    "name": "hero",
                    "variants": [
                        {"condition": 'plan = "pro"', "source": "<p>Pro perks inside</p>", "name": "pro"}
                    ],
                    "default": "<p>Welcome aboard</p>",
                }
            ],
        },
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 201, answer.text
    yield Shop(tenant=tenant, ada=ada, bob=bob, template_id=answer.json()["id"])


def _preview_body(page: Page) -> str:
    return page.frame_locator("iframe[data-testid=preview-html]").locator("body").inner_text()


def test_edit_a_template_and_watch_the_preview_as_a_customer(watched_page: PageWatch, shop: Shop) -> None:
    page = watched_page.page
    browser_login(page, shop.tenant.admin_email, shop.tenant.password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Templates").click()
    expect(page.get_by_role("heading", name="Templates", level=1)).to_be_visible()
    expect(page.get_by_test_id("templates-table")).to_contain_text("Spring newsletter")
    screenshot(page, "templates-list")

    page.get_by_role("link", name="Spring newsletter").click()
    expect(page.get_by_role("heading", name="Spring newsletter", level=1)).to_be_visible()
    page.get_by_label("Customer", exact=True).select_option(str(shop.ada))
    expect(page.get_by_test_id("preview-subject")).to_have_text("Hello Ada")
    expect(page.get_by_test_id("choice-hero")).to_have_text("pro")
    expect(page.frame_locator("iframe[data-testid=preview-html]").locator("h1")).to_have_text("Hello Ada")
    assert "Pro perks inside" in _preview_body(page)
    expect(page.get_by_test_id("preview-size")).to_contain_text("bytes as sent")
    screenshot(page, "template-editor-as-ada")

    page.get_by_label("Customer", exact=True).select_option(str(shop.bob))
    expect(page.get_by_test_id("choice-hero")).to_have_text("default")
    assert "Welcome aboard" in _preview_body(page)

    page.get_by_label("Subject").fill("Dear {{ first_name }}, spring is here")
    expect(page.get_by_test_id("preview-subject")).to_have_text("Dear Bob, spring is here")
    html = page.get_by_label("HTML", exact=True)
    html.fill(
        HTML.replace("{{ blocks.hero }}", "{{ blocks.hero }}\n<p>See you, {{ first_name | upcase }}</p>")
    )
    expect(page.frame_locator("iframe[data-testid=preview-html]").locator("p").last).to_have_text(
        "See you, BOB"
    )
    screenshot(page, "template-editor-edited")

    html.fill("<html><body>\n<p>{{ first_name | upcase </p>\n</body></html>")
    issue = page.locator("#issues-part_html").get_by_test_id("issue")
    expect(issue).to_contain_text("Error at line 2")
    expect(page.get_by_test_id("validation-status")).to_contain_text("1 error")
    screenshot(page, "template-editor-syntax-error")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("save-problem")).to_contain_text("Not saved")
    expect(page.locator("#issues-part_html")).to_contain_text("line 2")

    page.get_by_label("HTML", exact=True).fill(
        HTML.replace("{{ blocks.hero }}", "{{ blocks.hero }}<p>Bye</p>")
    )
    expect(page.get_by_test_id("validation-status")).to_have_text(re.compile(r"^\s*No errors"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".alert--success")).to_have_text("Saved version 2.")
    expect(page.get_by_label("Subject")).to_have_value("Dear {{ first_name }}, spring is here")
    screenshot(page, "template-editor-saved")


def test_an_sms_template_counts_segments_live(
    watched_page: PageWatch, ui_server: UiServer, shop: Shop
) -> None:
    page = watched_page.page
    browser_login(page, shop.tenant.admin_email, shop.tenant.password)
    page.goto("/templates")
    page.get_by_label("Name").fill("Flash sale text")
    page.locator("#new-channel").select_option("sms")
    page.get_by_role("button", name="Create template").click()
    expect(page.get_by_role("heading", name="Flash sale text", level=1)).to_be_visible()
    body = page.get_by_role("textbox", name="Body (required)")
    body.fill("Hi {{ first_name }}! " + "Sale " * 32)
    expect(page.get_by_test_id("sms-counter")).to_contain_text("2 segments")
    body.fill("Hi {{ first_name }}!")
    expect(page.get_by_test_id("sms-counter")).to_contain_text("1 segment ")
    page.get_by_role("button", name="Add rule block").click()
    page.get_by_label("Block name").fill("greet")
    page.get_by_label("Show when (segment language)").fill('plan = "pro"')
    page.get_by_label("Content (Liquid)").fill("VIP!")
    body.fill("{{ blocks.greet }} Hi {{ first_name }}!")
    page.get_by_label("or email, user id or profile id").fill("ada@shop.test")
    expect(page.get_by_test_id("preview-sms")).to_have_text("VIP! Hi Ada!")
    screenshot(page, "template-sms-editor")


def test_the_editor_fits_a_375px_phone(browser_context_phone: PageWatch, shop: Shop) -> None:
    page = browser_context_phone.page
    browser_login(page, shop.tenant.admin_email, shop.tenant.password)
    page.goto("/templates")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.goto(f"/templates/{shop.template_id}")
    expect(page.get_by_test_id("preview-subject")).not_to_be_empty()
    expect(page.frame_locator("iframe[data-testid=preview-html]").locator("h1")).to_contain_text("Hello")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the editor scrolls sideways: {width}px wide"
    screenshot(page, "template-editor-375px")
