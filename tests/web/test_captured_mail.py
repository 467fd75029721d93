"""Email captured in a local Maildir (no SMTP server: the demo's mail catcher), shown in the UI."""

from __future__ import annotations

import mailbox
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from rapport.app import create_app
from rapport.channels.base import EmailPayload, OutboundMessage, SendStatus
from rapport.channels.maildir import MaildirChannel, captured
from rapport.config import Settings as AppSettings
from rapport.messaging import service as messaging_service
from rapport.messaging.delivery import Deliverer
from rapport.runtime import Runtime, build_runtime
from tests.campaigns.conftest import call, make_campaign, make_segment
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import events, message
from tests.support.tenants import Tenant
from tests.web.ui import ui_login

HTML = '<p style="color:#c00">Hello {{ first_name | default: "there" }}</p><script>alert(1)</script>'
TRACKED_HTML = (
    "<html><body><h1>Autumn sale</h1>"
    '<p><a href="https://shop.example/sale?a=1&amp;b=2">See the sale</a></p>'
    '<p><a href="mailto:help@shop.example">Mail us</a></p></body></html>'
)


@pytest.fixture
def mail_client(runtime: Runtime, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    folder = tmp_path / "mail"
    settings = AppSettings(
        database_url=runtime.settings.database_url,
        secret_key="test-secret-key-0123456789",
        run_worker_in_process=False,
        email_maildir=str(folder),
    )
    capturing = build_runtime(settings)
    try:
        with TestClient(create_app(settings, runtime=capturing, start_worker=False)) as client:
            yield client, folder
    finally:
        capturing.close()


def test_a_campaign_test_send_lands_in_the_maildir_and_the_ui_shows_it(
    mail_client: tuple[TestClient, Path], tenant: Tenant
) -> None:
    client, folder = mail_client
    campaign = make_campaign(
        client,
        tenant,
        name="Welcome",
        channel="email",
        segment_ids=[make_segment(client, tenant, "Everyone", "email is set")],
        variants=[
            {"key": "A", "content": {"subject": "Welcome {{ first_name | default: 'friend' }}", "html": HTML}}
        ],
    )
    result = call(
        client,
        tenant,
        "POST",
        f"/api/v1/campaigns/{campaign['id']}/test",
        json={"addresses": ["ann@shop.test"]},
    )
    assert [r["status"] for r in result["results"]] == ["sent"]

    # A standard Maildir: any mail client (here the standard library) reads the complete message.
    [raw] = [bytes(m) for m in mailbox.Maildir(folder, create=False)]
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["To"] == "ann@shop.test" and parsed["Subject"] == "[TEST] Welcome friend"
    assert parsed.get_body(preferencelist=("plain",)) is not None  # the text part generated from HTML

    ui_login(client, tenant.viewer_email, tenant.password)
    channels = client.get("/settings/channels").text
    assert "email is captured, not sent" in channels and str(folder) in channels and "1 message" in channels
    listing = client.get("/settings/mail")
    assert listing.status_code == 200 and "[TEST] Welcome friend" in listing.text
    [key] = list(mailbox.Maildir(folder, create=False).keys())
    page = client.get(f"/settings/mail/{key}")
    assert page.status_code == 200 and "ann@shop.test" in page.text
    # The HTML part is shown in a sandboxed frame of its own document, never inline in the page, which
    # keeps the strict UI policy.
    assert f'sandbox="" src="/settings/mail/{key}/html"' in page.text
    assert "<script>alert(1)</script>" not in page.text and "color:#c00" not in page.text
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    frame = client.get(f"/settings/mail/{key}/html")
    assert frame.status_code == 200 and frame.headers["content-type"].startswith("text/html")
    assert '<p style="color:#c00">Hello there</p>' in frame.text
    # The email's document runs no script (sandboxed, no script source) and loads nothing but its own styles.
    assert frame.headers["Content-Security-Policy"] == (
        "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    )
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    for missing in ("/settings/mail/nope", "/settings/mail/..%2F..%2Fetc", "/settings/mail/nope/html"):
        assert client.get(missing).status_code == 404, missing


def _delivered_html(folder: Path) -> tuple[str, str]:
    [(key, raw)] = [(k, bytes(m)) for k, m in mailbox.Maildir(folder, create=False).items()]
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=("html",))
    assert part is not None
    return key, str(part.get_content())


def _opened(client: TestClient, tenant: Tenant, campaign_id: int) -> int:
    stats = call(client, tenant, "GET", f"/api/v1/campaigns/{campaign_id}/stats")
    return sum(int(arm["opened"]) for arm in stats["arms"])


def test_looking_at_a_captured_campaign_email_records_no_open_and_shows_real_link_targets(
    mail_client: tuple[TestClient, Path], tenant: Tenant
) -> None:
    client, folder = mail_client
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    campaign = make_campaign(
        client,
        tenant,
        name="Autumn",
        channel="email",
        segment_ids=[make_segment(client, tenant, "Everyone", "email is set")],
        variants=[{"key": "A", "content": {"subject": "Autumn sale", "html": TRACKED_HTML}}],
    )
    [pid] = make_people(runtime, tenant, 1)
    with runtime.sessions() as db:
        queued = messaging_service.enqueue(
            db,
            workspace_id=tenant.workspace_id,
            profile_id=pid,
            channel="email",
            content={"subject": "Autumn sale", "html": TRACKED_HTML},
            dedupe_key=f"c{campaign['id']}:{pid}:email",
            now=runtime.clock.now(),
            campaign_id=campaign["id"],
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
    key, delivered = _delivered_html(folder)
    base = runtime.settings.base_url
    [pixel] = re.findall(r'<img src="([^"]+)"', delivered)
    [link] = re.findall(r'href="([^"]+/t/c/[^"]+)"', delivered)
    assert pixel.startswith(f"{base}/t/o/")

    ui_login(client, tenant.viewer_email, tenant.password)
    page = client.get(f"/settings/mail/{key}")
    frame = client.get(f"/settings/mail/{key}/html")
    assert page.status_code == frame.status_code == 200
    for shown in (page.text, frame.text):
        assert "/t/o/" not in shown and "/t/c/" not in shown
    assert "<img" not in frame.text
    assert '<a href="https://shop.example/sale?a=1&amp;b=2">See the sale</a>' in frame.text
    assert '<a href="mailto:help@shop.example">Mail us</a>' in frame.text
    assert message(runtime, message_id).opened_at is None
    assert events(runtime, pid, "email_opened") == []
    assert _opened(client, tenant, campaign["id"]) == 0

    # The email as delivered is unchanged, and the customer's open and click still count.
    assert _delivered_html(folder) == (key, delivered)
    assert client.get(urlsplit(pixel).path).status_code == 200
    assert _opened(client, tenant, campaign["id"]) == 1
    assert client.get(urlsplit(link).path, follow_redirects=False).headers["location"] == (
        "https://shop.example/sale?a=1&b=2"
    )
    assert message(runtime, message_id).clicked_at is not None


def test_without_capture_the_captured_mail_pages_do_not_exist(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    page = client.get("/settings/mail")
    assert page.status_code == 200 and "Email is not being captured" in page.text
    assert client.get("/settings/mail/anything").status_code == 404
    assert client.get("/settings/mail/anything/html").status_code == 404
    assert "RAPPORT_EMAIL_MAILDIR" in client.get("/settings/channels").text


def test_the_maildir_channel_reports_each_message_and_never_shows_a_half_written_one(tmp_path: Path) -> None:
    channel = MaildirChannel(tmp_path / "box", id_domain="shop.test")
    good = OutboundMessage(
        "m-1",
        "email",
        "bob@shop.test",
        email=EmailPayload(subject="Hi", text="Hello", from_address="a@shop.test"),
    )
    bad = OutboundMessage("m-2", "email", "bob@shop.test")  # no email payload
    broken = OutboundMessage(
        "m-3",
        "email",
        "bob@shop.test",
        email=EmailPayload(subject="x", text="y", from_address="not an address"),
    )
    results = channel.send([good, bad, broken])
    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.FAILED_PERMANENT,
        SendStatus.FAILED_PERMANENT,
    ]
    assert results[0].provider_id and (tmp_path / "box" / "new" / results[0].provider_id).is_file()
    assert list((tmp_path / "box" / "tmp").iterdir()) == []
    count, [only] = captured(tmp_path / "box")
    assert count == 1 and only.subject == "Hi" and only.to == "bob@shop.test"
    assert "<m-1@shop.test>" in (tmp_path / "box" / "new" / results[0].provider_id).read_text()
