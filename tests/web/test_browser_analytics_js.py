"""Segment's browser SDK, analytics.js (``@segment/analytics-next``, vendored unchanged in tests/data/vendor/),
on a shop's page in chromium, sending to a real ``rapport serve`` on another origin.

The shop is a second HTTP server on 127.0.0.1 (another port: a cross-origin request with a CORS preflight,
as from a brand's site to its Rapport). analytics.js is pointed at Rapport the documented way
(``integrations["Segment.io"].apiHost``) and given its settings inline, so it asks no CDN for them. It posts
each call to ``{apiHost}/{first letter of the type}`` (``/v1/p``, ``/v1/t``, …) and, in its batching mode,
to ``/v1/b``; it keeps the visitor's anonymous id in the browser and sends ``text/plain`` bodies.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser

from rapport.config import Settings
from rapport.runtime import build_runtime
from tests.support.browser import PageWatch
from tests.support.tenants import Tenant, make_tenant
from tests.web.conftest import UiServer

pytestmark = pytest.mark.browser

VENDORED = Path(__file__).resolve().parents[1] / "data" / "vendor" / "analytics-next.umd.js"

_PAGE = """<!doctype html>
<html><head><title>Hartley &amp; Finch</title><link rel="icon" href="data:,"><script src="/analytics-next.umd.js"></script></head>
<body><h1>Winter coats</h1><script>
const settings = {integrations: {"Segment.io": {apiKey: WRITE_KEY, apiHost: API_HOST, protocol: "http",
                                                 ...DELIVERY}}};
const analytics = window.AnalyticsNext.AnalyticsBrowser.load({writeKey: WRITE_KEY, cdnSettings: settings});
window.journey = (async () => {
  await analytics.page("Shop", "Winter coats");
  await analytics.track("Product Viewed", {sku: "COAT-1", price: 120});
  await analytics.identify("web-shopper", {email: "Shopper@Example.org", plan: "gold"});
  await analytics.track("Order Completed", {total: 120, currency: "GBP"});
  return (await analytics.user()).anonymousId();
})();
</script></body></html>
"""


@pytest.fixture(scope="module")
def shop_tenant(ui_server: UiServer) -> Tenant:
    """A workspace of its own on the session's server (the other browser tests count acme's customers)."""
    runtime = build_runtime(
        Settings(database_url=ui_server.database_url, secret_key="x" * 32, db_pool_size=1)
    )
    try:
        return make_tenant(runtime, "webshop")
    finally:
        runtime.close()


class _Shop:
    """The brand's site: a static HTTP server on 127.0.0.1 serving one page and analytics.js."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[_Shop, Path]]:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "analytics-next.umd.js").write_bytes(VENDORED.read_bytes())
    site = _Shop(root)
    try:
        yield site, root
    finally:
        site.close()


def _eventually(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)
    return found


@pytest.mark.parametrize("delivery", ["standard", "batching"])
def test_analytics_js_on_a_shop_page_reaches_one_profile(
    chromium: Browser,
    ui_server: UiServer,
    shop_tenant: Tenant,
    shop: tuple[_Shop, Path],
    delivery: str,
) -> None:
    site, root = shop
    user = f"web-shopper-{delivery}"
    strategy = (
        {"deliveryStrategy": {"strategy": "batching", "config": {"size": 10, "timeout": 200}}}
        if delivery == "batching"
        else {}
    )
    api_host = ui_server.url.removeprefix("http://") + "/v1"
    page_html = (
        _PAGE.replace("WRITE_KEY", json.dumps(shop_tenant.write_key))
        .replace("API_HOST", json.dumps(api_host))
        .replace("...DELIVERY", f"...{json.dumps(strategy)}")
        .replace('"web-shopper"', json.dumps(user))
        .replace("Shopper@Example.org", f"Shopper-{delivery}@Example.org")
    )
    (root / "index.html").write_text(page_html)

    context = chromium.new_context(locale="en-GB")
    posted: list[tuple[str, int]] = []
    try:
        page = context.new_page()
        watch = PageWatch(page).attach()
        page.on(
            "response",
            lambda r: (
                posted.append((r.url.removeprefix(ui_server.url), r.status))
                if r.request.method == "POST" and r.url.startswith(ui_server.url)
                else None
            ),
        )
        page.goto(site.url + "/")
        anonymous_id = page.evaluate("window.journey")
        deadline = time.monotonic() + 30
        while len(posted) < (1 if delivery == "batching" else 4):  # the batch leaves after its timeout
            assert time.monotonic() < deadline, f"analytics.js posted only {posted}"
            page.wait_for_timeout(100)  # lets Playwright deliver the page's events meanwhile
        watch.assert_clean()  # no CORS refusal, no failed request
    finally:
        context.close()

    if delivery == "batching":
        assert {path for path, _ in posted} == {"/v1/b"}
    else:
        assert [path for path, _ in posted] == ["/v1/p", "/v1/t", "/v1/i", "/v1/t"]
    assert {status for _, status in posted} == {200}

    headers = shop_tenant.secret_headers

    def lookup(kind: str, value: str) -> dict[str, Any] | None:
        answer = httpx.get(
            f"{ui_server.url}/api/v1/profiles/lookup", params={"kind": kind, "value": value}, headers=headers
        )
        return answer.json() if answer.status_code == 200 else None

    def timeline(profile_id: int) -> list[dict[str, Any]]:
        answer = httpx.get(f"{ui_server.url}/api/v1/profiles/{profile_id}/events", headers=headers)
        return list(answer.json())

    profile = _eventually(lambda: lookup("user_id", user), "the identify is processed")
    events = _eventually(lambda: (found := timeline(profile["id"])) and len(found) >= 4 and found, "4 events")
    # the visit before the identify, kept under the browser's anonymous id, is the same person's
    visitor = lookup("anonymous_id", anonymous_id)
    assert visitor is not None and visitor["id"] == profile["id"]
    assert lookup("email", f"shopper-{delivery}@example.org") == profile
    assert profile["traits"]["plan"] == "gold"
    assert Counter(e["type"] for e in events) == {"page": 1, "track": 2, "identify": 1}
    assert {e["channel"] for e in events} == {"web"}
    (viewed,) = [e for e in events if e["event"] == "Product Viewed"]
    assert viewed["properties"] == {"sku": "COAT-1", "price": 120}
    assert viewed["context"]["page"]["url"] == site.url + "/"
    assert viewed["context"]["library"]["name"] == "analytics.js"
    (page_view,) = [e for e in events if e["type"] == "page"]
    assert page_view["event"] == "Winter coats" and page_view["properties"]["title"] == "Hartley & Finch"
