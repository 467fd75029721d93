"""Captured mail in a real chromium: staff looking at a tracked email record no open and no click.

A ``rapport serve`` of its own captures email in a Maildir and is its own tracking host
(``RAPPORT_BASE_URL`` is the server's address), so the open pixel and the click links in a captured
campaign email point at this very server, exactly as in the demo. The message is sent the real way (a
campaign's outbox row, the deliverer, the Maildir channel), then opened in Settings → Captured mail.
"""

from __future__ import annotations

import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from rapport.config import Settings
from rapport.messaging import service as messaging_service
from rapport.messaging.delivery import Deliverer
from rapport.runtime import Runtime, build_runtime
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import events, message
from tests.support.browser import PageWatch, screenshot
from tests.support.databases import SqliteFactory
from tests.support.server import RapportServer
from tests.support.tenants import Tenant, make_tenant
from tests.web.conftest import browser_login

pytestmark = pytest.mark.browser

HTML = (
    "<html><body><h1>Autumn sale</h1>"
    '<p><a href="https://shop.example/sale?a=1&amp;b=2">See the sale</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


@dataclass(frozen=True)
class MailServer:
    """A server capturing email in ``folder``, a runtime over its database, and its workspace."""

    url: str
    runtime: Runtime
    tenant: Tenant
    folder: Path


@pytest.fixture(scope="module")
def mail_server(
    sqlite_factory: SqliteFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MailServer]:
    """``rapport serve`` capturing email, tracking under its own address, its worker off (the test sends)."""
    workdir = tmp_path_factory.mktemp("mail-server")
    url = sqlite_factory.new_url(workdir)
    folder = workdir / "mail"
    server = RapportServer(
        url,
        workdir=workdir,
        env={
            "RAPPORT_LOG_LEVEL": "WARNING",
            "RAPPORT_EMAIL_MAILDIR": str(folder),
            "RAPPORT_RUN_WORKER_IN_PROCESS": "false",
        },
    )
    server.env["RAPPORT_BASE_URL"] = server.url  # the pixel and the links point at this server
    runtime = build_runtime(
        Settings(
            database_url=url,
            secret_key=server.env["RAPPORT_SECRET_KEY"],  # tokens the server can read
            base_url=server.url,
            email_maildir=str(folder),
            run_worker_in_process=False,
            db_pool_size=1,
        )
    )
    try:
        tenant = make_tenant(runtime, "acme")
        server.start()
        try:
            yield MailServer(url=server.url, runtime=runtime, tenant=tenant, folder=folder)
        finally:
            server.stop()
    finally:
        runtime.close()


def _opened(server: MailServer, campaign_id: int) -> int:
    answer = httpx.get(
        f"{server.url}/api/v1/campaigns/{campaign_id}/stats", headers=server.tenant.secret_headers
    )
    assert answer.status_code == 200, answer.text
    return sum(arm["opened"] for arm in answer.json()["arms"])


def test_opening_a_captured_campaign_email_records_no_open_and_no_click(
    chromium: Browser, mail_server: MailServer
) -> None:
    runtime, tenant = mail_server.runtime, mail_server.tenant
    segment = httpx.post(
        f"{mail_server.url}/api/v1/segments",
        json={"name": "Everyone", "text": "email is set"},
        headers=tenant.secret_headers,
    )
    assert segment.status_code == 201, segment.text
    campaign = httpx.post(
        f"{mail_server.url}/api/v1/campaigns",
        json={
            "name": "Autumn",
            "channel": "email",
            "segment_ids": [segment.json()["id"]],
            "variants": [{"key": "A", "content": {"subject": "Autumn sale", "html": HTML}}],
        },
        headers=tenant.secret_headers,
    )
    assert campaign.status_code == 201, campaign.text
    campaign_id = int(campaign.json()["id"])
    [pid] = make_people(runtime, tenant, 1)
    with runtime.sessions() as db:
        queued = messaging_service.enqueue(
            db,
            workspace_id=tenant.workspace_id,
            profile_id=pid,
            channel="email",
            content={"subject": "Autumn sale", "html": HTML},
            dedupe_key=f"c{campaign_id}:{pid}:email",
            now=runtime.clock.now(),
            campaign_id=campaign_id,
            variant="A",
        )
        assert queued is not None
        message_id = queued.message_id
        db.commit()
    deliverer = Deliverer(runtime, worker_id="test-capture")
    try:
        assert deliverer.drain().sent == 1
    finally:
        deliverer.close()

    # What the customer got: a pixel and a tracked link, both on this server.
    [(key, raw)] = [(k, bytes(m)) for k, m in mailbox.Maildir(mail_server.folder, create=False).items()]
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    html_part = parsed.get_body(("html",))
    assert html_part is not None
    delivered = str(html_part.get_content())
    [pixel] = re.findall(r'<img src="([^"]+)"', delivered)
    assert pixel.startswith(f"{mail_server.url}/t/o/")
    assert f'href="{mail_server.url}/t/c/' in delivered

    context = chromium.new_context(base_url=mail_server.url, locale="en-GB")
    context.set_default_timeout(10_000)
    try:
        watch = PageWatch(context.new_page()).attach()
        page = watch.page
        browser_login(page, tenant.viewer_email, tenant.password)
        page.goto("/settings/mail")
        page.get_by_role("link", name="Autumn sale").click()
        expect(page).to_have_url(f"{mail_server.url}/settings/mail/{key}")
        expect(page.get_by_role("heading", name="Autumn sale", level=2)).to_be_visible()
        frame = page.frame_locator('[data-testid="captured-html"]')
        expect(frame.get_by_role("heading", name="Autumn sale")).to_be_visible()
        # The link shows (and goes to) where it leads, not through the click tracker.
        expect(frame.get_by_role("link", name="See the sale")).to_have_attribute(
            "href", "https://shop.example/sale?a=1&b=2"
        )
        expect(frame.locator("img")).to_have_count(0)
        page.wait_for_load_state("networkidle")  # everything the page and its frame load has loaded
        assert "/t/o/" not in page.content() and "/t/c/" not in page.content()
        screenshot(page, "captured-mail-message")
        watch.assert_clean()
    finally:
        context.close()

    # The server saw no open (the frame's images would have loaded by now) and no click.
    assert message(runtime, message_id).opened_at is None
    assert message(runtime, message_id).clicked_at is None
    assert events(runtime, pid, "email_opened") == []
    assert _opened(mail_server, campaign_id) == 0

    # The customer's own open still counts: the delivered email is unchanged and its pixel works.
    assert [bytes(m) for m in mailbox.Maildir(mail_server.folder, create=False)] == [raw]
    answer = httpx.get(pixel)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
    assert message(runtime, message_id).opened_at is not None
    assert _opened(mail_server, campaign_id) == 1
