"""Email captured in a local Maildir (no SMTP server: the demo's mail catcher), shown in the UI."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rapport.app import create_app
from rapport.channels.base import EmailPayload, OutboundMessage, SendStatus
from rapport.channels.maildir import MaildirChannel, captured
from rapport.config import Settings as AppSettings
from rapport.runtime import Runtime, build_runtime
from tests.campaigns.conftest import call, make_campaign, make_segment
from tests.support.tenants import Tenant
from tests.web.ui import ui_login

HTML = '<p style="color:#c00">Hello {{ first_name | default: "there" }}</p><script>alert(1)</script>'


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
    # The HTML part is shown in a frame without scripts: sandboxed, escaped into srcdoc, never inline.
    assert 'sandbox="" srcdoc="&lt;p style=&#34;color:#c00&#34;&gt;Hello there&lt;/p&gt;' in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "style-src 'self' 'unsafe-inline'" in page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/settings/mail/nope").status_code == 404
    assert client.get("/settings/mail/..%2F..%2Fetc").status_code == 404


def test_without_capture_the_captured_mail_pages_do_not_exist(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    page = client.get("/settings/mail")
    assert page.status_code == 200 and "Email is not being captured" in page.text
    assert client.get("/settings/mail/anything").status_code == 404
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
