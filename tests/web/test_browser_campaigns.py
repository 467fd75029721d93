"""A campaign made in a real chromium against a real ``rapport serve`` (with its in-process worker and an
SMTP sink): the step-by-step form, the review with the audience estimate, launch, the messages at the sink
and the results page; screenshots under test-artifacts/; a console error fails the test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, expect

from rapport.config import Settings
from rapport.content import service as content_service
from rapport.content.schemas import TemplateCreate
from rapport.runtime import build_runtime
from rapport.segments import service as segments_service
from rapport.segments.schemas import SegmentCreate
from tests.messaging.conftest import make_people
from tests.support.browser import PageWatch, screenshot
from tests.support.databases import SqliteFactory
from tests.support.server import RapportServer
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant, make_tenant
from tests.web.conftest import browser_login

pytestmark = pytest.mark.browser
PEOPLE = 4


@dataclass(frozen=True)
class Shop:
    """A server whose email channel delivers to ``sink``, with a tenant of consenting customers."""

    url: str
    tenant: Tenant
    sink: SmtpSink


@pytest.fixture(scope="module")
def shop(sqlite_factory: SqliteFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    workdir: Path = tmp_path_factory.mktemp("campaign-server")
    url = sqlite_factory.new_url(workdir)
    runtime = build_runtime(Settings(database_url=url, secret_key="seed-secret-0123456789", db_pool_size=1))
    try:
        tenant = make_tenant(runtime, "mailshop")
        make_people(runtime, tenant, PEOPLE, extra={"city": "Leeds"})
        now = runtime.clock.now()
        with runtime.sessions() as db:
            segments_service.create_segment(
                db, workspace_id=tenant.workspace_id, data=SegmentCreate(name="Leeds", text='city = "Leeds"'),
                actor="test", now=now,
            )  # fmt: skip
            content_service.create_template(
                db,
                workspace_id=tenant.workspace_id,
                data=TemplateCreate(
                    name="Winter news",
                    channel="email",
                    content={
                        "subject": "Winter news for {{ first_name }}",
                        "html": "<p>Hello {{ first_name }}</p>",
                    },
                ),
                actor="test",
                now=now,
            )
            db.commit()
    finally:
        runtime.close()
    with SmtpSink() as sink:
        env = {"RAPPORT_LOG_LEVEL": "WARNING", "RAPPORT_SMTP_HOST": sink.host, "RAPPORT_SMTP_PORT": str(sink.port),
               "RAPPORT_WORKER_POLL_SECONDS": "0.1"}  # fmt: skip
        server = RapportServer(url, workdir=workdir, env=env).start()
        try:
            yield Shop(url=server.url, tenant=tenant, sink=sink)
        finally:
            server.stop()


@pytest.fixture
def page_watch(chromium: Browser, shop: Shop) -> Iterator[PageWatch]:
    context = chromium.new_context(base_url=shop.url, viewport={"width": 1280, "height": 900}, locale="en-GB",
                                   reduced_motion="reduce")  # fmt: skip
    context.set_default_timeout(15_000)
    watch = PageWatch(context.new_page()).attach()
    yield watch
    watch.assert_clean()
    context.close()


def test_create_review_launch_and_follow_a_broadcast(page_watch: PageWatch, shop: Shop) -> None:
    page = page_watch.page
    browser_login(page, shop.tenant.admin_email, shop.tenant.password)
    page.get_by_role("link", name="Campaigns").first.click()
    expect(page.get_by_role("heading", name="Campaigns", level=1)).to_be_visible()
    screenshot(page, "campaigns-empty")
    page.get_by_role("link", name="Create your first campaign").click()

    expect(page.get_by_role("heading", name="New campaign", level=1)).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Winter hello")
    # only the broadcast sections show for a broadcast
    expect(page.get_by_label("Event name")).to_be_hidden()
    page.get_by_label("Leeds").first.check()
    page.get_by_label("Template of variant A").select_option(label="Winter news (email)")
    page.get_by_label("Control group (% who get nothing)").fill("0")
    screenshot(page, "campaign-new")
    page.get_by_role("button", name="Save draft and review").click()

    expect(page.get_by_role("heading", name="Winter hello", level=1)).to_be_visible()
    expect(page.get_by_test_id("audience-total")).to_have_text(str(PEOPLE))
    expect(page.get_by_test_id("audience-reachable")).to_have_text(str(PEOPLE))
    screenshot(page, "campaign-review")
    page.get_by_role("button", name="Launch and send now").click()

    results = page.get_by_test_id("campaign-results")
    expect(results).to_have_attribute("data-status", "sent", timeout=30_000)
    expect(page.get_by_test_id("results-sent")).to_have_text(str(PEOPLE))
    # the status line and the actions follow the results (out-of-band swaps)
    expect(page.get_by_test_id("campaign-status")).to_have_text("sent")
    expect(page.get_by_role("button", name="Archive")).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    expect(page.get_by_test_id("arms-chart")).to_have_attribute("data-chart-state", "ready")
    received = shop.sink.wait_for(PEOPLE, timeout=10)
    assert sorted(m.parsed()["Subject"] for m in received) == [
        f"Winter news for Person{i}" for i in range(PEOPLE)
    ]
    screenshot(page, "campaign-results")

    page.get_by_role("link", name="Campaigns").first.click()
    row = page.get_by_test_id("campaigns-table").get_by_role("row", name=re.compile("Winter hello"))
    expect(row).to_contain_text("sent")

    # the recipient's side: the List-Unsubscribe link opens the preference centre, one click unsubscribes
    first = next(m for m in received if m.rcpt_tos == ["person0@example.com"])
    header = str(first.parsed()["List-Unsubscribe"])
    found = re.search(r"<(https?://[^>]+/u/[^>]+)>", header)
    assert found, header
    path = urlsplit(found.group(1)).path
    page.goto(path)
    expect(page.get_by_role("heading", name=re.compile("^Unsubscribe from"))).to_be_visible()
    screenshot(page, "preference-centre")
    page.get_by_role("button", name="Unsubscribe", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("took effect at once")
    screenshot(page, "preference-centre-done")
    with httpx.Client(base_url=shop.url, headers=shop.tenant.secret_headers) as api:
        [profile] = api.get("/api/v1/profiles", params={"email": "person0@example.com"}).json()
        consent = api.get(f"/api/v1/profiles/{profile['id']}/consent").json()
    states = {(s["channel"], s["topic"]): s["state"] for s in consent["subscriptions"]}
    assert states[("email", "")] == "unsubscribed"


def test_the_browser_refuses_a_number_out_of_range_and_the_server_lists_what_remains(
    page_watch: PageWatch, shop: Shop
) -> None:
    page = page_watch.page
    browser_login(page, shop.tenant.admin_email, shop.tenant.password)
    page.goto("/campaigns/new")
    page.get_by_label("Name", exact=True).fill("Too much")
    page.get_by_label("Leeds").first.check()
    throttle = page.get_by_label("Throttle")
    throttle.fill("100000000000000000000")
    page.get_by_role("button", name="Save draft and review").click()
    # the input's max holds the form back before anything reaches the server
    assert throttle.evaluate("input => input.validity.rangeOverflow") is True
    expect(page.get_by_test_id("form-errors")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/campaigns/new$"))

    throttle.fill("")
    # a bad number in a section of another kind is hidden and disabled: it does not block this save
    page.get_by_label("Triggered").check()
    page.get_by_label("Delay").fill("600000")
    page.get_by_label("Broadcast").check()
    page.get_by_role("button", name="Save draft and review").click()
    errors = page.get_by_test_id("form-errors")
    expect(errors).to_have_text("Choose a template for variant A")
    expect(page.get_by_test_id("error-variant_A_template")).to_be_visible()
    expect(page.get_by_label("Template of variant A")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Too much")
    screenshot(page, "campaign-form-errors")
    # the refused save's own status line in the console is the answer we asked for, not a script error
    page_watch.console_errors = [e for e in page_watch.console_errors if "status of 400" not in e]
