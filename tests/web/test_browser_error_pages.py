"""The error page in a real chromium: a mistyped address while signed in is a page with a way back, not JSON.

The page is not watched for console errors: chromium logs every 4xx document as one.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.support.browser import screenshot
from tests.web.conftest import UiServer, browser_login

pytestmark = pytest.mark.browser


def test_a_mistyped_address_shows_the_not_found_page_and_leads_back(
    browser_context: BrowserContext, ui_server: UiServer
) -> None:
    page = browser_context.new_page()
    browser_login(page, ui_server.tenant.viewer_email, ui_server.tenant.password)
    answer = page.goto("/campaign")
    assert answer is not None and answer.status == 404
    assert answer.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="Not found", level=1)).to_be_visible()
    expect(page.locator(".topbar .workspace")).to_have_text("Acme")  # still in the signed-in layout
    screenshot(page, "error-not-found")
    page.get_by_role("link", name="Back to the dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()

    api = page.goto("/api/v1/no-such-thing")  # a browser on the API still gets the API's JSON
    assert api is not None and api.status == 404
    assert api.json()["error"]["code"] == "not_found"
