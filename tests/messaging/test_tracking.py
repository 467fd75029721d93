"""Open pixel and signed click redirects for marketing email, through the SMTP sink and the real routes."""

from __future__ import annotations

import json
import re
import zlib
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from rapport.kit.clock import FakeClock
from rapport.messaging import tracking
from rapport.messaging.delivery import Deliverer
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import NOON, events, message, queue, set_workspace_settings
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

HTML = (
    "<html><body><p>Hi {{ profile.first_name }}</p>"
    '<a href="https://shop.example/sale?a=1&amp;b=2">Sale</a> '
    "<a class='x' href='https://shop.example/new'>New</a> "
    '<a href="mailto:help@shop.example">Mail us</a> <a href="#top">Top</a> '
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></body></html>'
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


def _html_of(sink: SmtpSink) -> tuple[str, str]:
    [received] = sink.wait_for(1)
    parsed = received.parsed()
    html = parsed.get_body(("html",))
    text = parsed.get_body(("plain",))
    assert html is not None and text is not None
    return str(html.get_content()), str(text.get_content())


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_marketing_links_are_wrapped_and_opens_and_clicks_are_recorded(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, client: TestClient
) -> None:
    [pid] = make_people(runtime, tenant, 1)
    sent = queue(runtime, tenant, pid, "t:1", content={"subject": "Sale", "html": HTML})
    assert deliverer.drain().sent == 1
    html, text = _html_of(sink)
    base = runtime.settings.base_url
    hrefs = re.findall(r"""href=["']([^"']+)["']""", html)
    wrapped = [h for h in hrefs if h.startswith(f"{base}/t/c/")]
    assert len(wrapped) == 2  # the two web links; mailto, #top and unsubscribe untouched
    assert "mailto:help@shop.example" in hrefs and "#top" in hrefs
    assert any(h.startswith(f"{base}/u/") for h in hrefs)
    assert "https://shop.example/sale" not in html  # only reachable through the redirect
    assert "https://shop.example/sale?a=1&b=2" in text  # the text part keeps the plain link
    [pixel] = re.findall(r'<img src="([^"]+)"', html)
    assert pixel.startswith(f"{base}/t/o/") and pixel.endswith(".gif")

    # Opening twice: a GIF each time, one event, opened_at set once.
    for _ in range(2):
        answer = client.get(_path(pixel))
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/gif"
        assert answer.content == tracking.PIXEL_GIF
        assert "no-store" in answer.headers["cache-control"]
    assert len(events(runtime, pid, "email_opened")) == 1
    assert message(runtime, sent.message_id).opened_at == NOON

    # Clicks redirect to the original URL (entities decoded) and are counted per link.
    sale, new = wrapped
    for link, times in ((sale, 2), (new, 1)):
        for _ in range(times):
            answer = client.get(_path(link), follow_redirects=False)
            assert answer.status_code == 302
    assert client.get(_path(sale), follow_redirects=False).headers["location"] == (
        "https://shop.example/sale?a=1&b=2"
    )
    clicks = events(runtime, pid, "email_clicked")
    assert len(clicks) == 4
    assert {c.properties["url"] for c in clicks} == {
        "https://shop.example/sale?a=1&b=2",
        "https://shop.example/new",
    }
    assert message(runtime, sent.message_id).clicked_at == NOON

    stats = client.get(f"/api/v1/messages/{sent.id}/links", headers=tenant.secret_headers)
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["clicks"] == 4
    assert [(e["url"], e["clicks"]) for e in body["links"]] == [
        ("https://shop.example/sale?a=1&b=2", 3),
        ("https://shop.example/new", 1),
    ]
    # The write key cannot read stats (R19).
    assert client.get(f"/api/v1/messages/{sent.id}/links", headers=tenant.write_headers).status_code == 403


def test_a_click_counts_as_an_open_when_images_were_blocked(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, client: TestClient
) -> None:
    [pid] = make_people(runtime, tenant, 1)
    sent = queue(runtime, tenant, pid, "t:2", content={"subject": "Sale", "html": HTML})
    deliverer.drain()
    html, _ = _html_of(sink)
    link = re.findall(r'href="([^"]+/t/c/[^"]+)"', html)[0]
    assert client.get(_path(link), follow_redirects=False).status_code == 302
    assert message(runtime, sent.message_id).opened_at == NOON
    assert len(events(runtime, pid, "email_opened")) == 1


def test_forged_or_altered_click_tokens_never_redirect(
    runtime: Runtime, tenant: Tenant, client: TestClient
) -> None:
    tracker = tracking.Tracker(secret=runtime.secret_key, base_url=runtime.settings.base_url)
    good = tracker.click_url("m-1", "https://shop.example/")
    token = good.rsplit("/", 1)[1]
    forged = URLSafeSerializer("another-secret", salt=tracking.CLICK_SALT).dumps(
        {"m": "m-1", "u": "https://evil.example/"}
    )
    # Same payload shape, the URL swapped, the old signature kept.
    swapped_payload = URLSafeSerializer(runtime.secret_key, salt=tracking.CLICK_SALT).dumps(
        {"m": "m-1", "u": "https://evil.example/"}
    )
    altered = swapped_payload.split(".")[0] + "." + token.split(".")[-1]
    for bad in (forged, altered, token[:-2] + "xx", "nonsense"):
        answer = client.get(f"/t/c/{bad}", follow_redirects=False)
        assert answer.status_code == 404, bad
        assert "location" not in answer.headers
    # A javascript: target is refused even when signed.
    scripted = URLSafeSerializer(runtime.secret_key, salt=tracking.CLICK_SALT).dumps(
        {"m": "m-1", "u": "javascript:alert(1)"}
    )
    assert client.get(f"/t/c/{scripted}", follow_redirects=False).status_code == 404
    assert client.get(_path(good), follow_redirects=False).headers["location"] == "https://shop.example/"
    # A bad pixel token still answers a GIF (mail clients show nothing broken) and records nothing.
    assert client.get("/t/o/forged.gif").content == tracking.PIXEL_GIF


def test_service_email_and_opted_out_workspaces_are_not_tracked(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink
) -> None:
    p0, p1 = make_people(runtime, tenant, 2)
    queue(runtime, tenant, p0, "t:svc", kind="service", content={"subject": "Receipt", "html": HTML})
    deliverer.drain()
    html, _ = _html_of(sink)
    assert "/t/c/" not in html and "/t/o/" not in html
    sink.messages.clear()
    set_workspace_settings(runtime, tenant, email={"tracking": False})
    queue(runtime, tenant, p1, "t:off", content={"subject": "Sale", "html": HTML})
    deliverer.drain()
    html, _ = _html_of(sink)
    assert "/t/c/" not in html and "/t/o/" not in html
    assert "https://shop.example/new" in html


def test_rewrite_keeps_non_web_links_and_adds_the_pixel_without_a_body_tag() -> None:
    tracker = tracking.Tracker(secret="s" * 20, base_url="https://r.example")
    out = tracker.rewrite(
        '<a href="tel:+44">call</a><A HREF="HTTPS://x.example/a">x</A><a href="https://keep.example/u">u</a>',
        message_id="m9",
        keep={"https://keep.example/u"},
    )
    assert 'href="tel:+44"' in out and 'href="https://keep.example/u"' in out
    assert 'HREF="https://r.example/t/c/' in out
    assert out.endswith('style="display:none">')
    assert tracking.read_click_token("s" * 20, out.split("/t/c/")[1].split('"')[0]) == (
        "m9",
        "HTTPS://x.example/a",
    )


@settings(max_examples=300, deadline=None)
@given(message_id=st.text(min_size=1, max_size=60), url=st.text(max_size=300))
def test_token_signer_writes_what_itsdangerous_reads_and_writes(message_id: str, url: str) -> None:
    secret = "tracking-secret-0123456789"
    for salt, obj in (
        (tracking.OPEN_SALT, {"m": message_id}),
        (tracking.CLICK_SALT, {"m": message_id, "u": url}),
    ):
        reference = URLSafeSerializer(secret, salt=salt)
        token = tracking.TokenSigner(secret, salt).dumps(obj)
        assert reference.loads(token) == obj
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        if len(data) >= tracking.COMPRESS_FROM or len(zlib.compress(data)) >= len(data) - 1:
            assert token == reference.dumps(obj)  # byte for byte, compressed or not
        else:
            assert not token.startswith(".")  # a short payload is left uncompressed


def test_tracker_links_are_itsdangerous_tokens() -> None:
    tracker = tracking.Tracker(secret="s" * 20, base_url="https://r.example/")
    long_url = "https://shop.example/sale?" + "&".join(f"utm_{i}=campaign-winter-2026" for i in range(8))
    for url in ("https://shop.example/", long_url, "https://shop.example/caf\u00e9"):
        link = tracker.click_url("0f3c9a7e5b2d4c1a8e6f0b9d7c5a3e1f", url)
        token = link.removeprefix("https://r.example/t/c/")
        assert token == URLSafeSerializer("s" * 20, salt=tracking.CLICK_SALT).dumps(
            {"m": "0f3c9a7e5b2d4c1a8e6f0b9d7c5a3e1f", "u": url}
        )
        assert tracking.read_click_token("s" * 20, token) == ("0f3c9a7e5b2d4c1a8e6f0b9d7c5a3e1f", url)
    assert tracking.read_click_token("s" * 20, tracker.click_url("m", long_url).split("/t/c/")[1]) == (
        "m",
        long_url,
    )
    pixel = tracker.open_url("m-2").removeprefix("https://r.example/t/o/").removesuffix(".gif")
    assert tracking.read_open_token("s" * 20, pixel) == "m-2"
    assert tracking.read_open_token("t" * 20, pixel) is None  # another secret: not ours


def test_strip_tracking_gives_back_exactly_the_html_before_tracking() -> None:
    secret = "s" * 20
    tracker = tracking.Tracker(secret=secret, base_url="https://r.example")
    tracked = tracker.rewrite(HTML, message_id="m1")
    assert "/t/o/" in tracked and "/t/c/" in tracked
    assert tracking.strip_tracking(tracked, secret=secret) == HTML


def test_strip_tracking_leaves_no_tracking_url_in_any_shape() -> None:
    secret = "s" * 20
    tracker = tracking.Tracker(secret=secret, base_url="https://r.example")
    good = tracker.click_url("m1", "https://shop.example/a?b=1&c='2'")
    foreign = URLSafeSerializer("another-secret", salt=tracking.CLICK_SALT).dumps(
        {"m": "m1", "u": "https://x/"}
    )
    html = (
        f"<a class=btn href='{good}'>A</a>"
        f'<a href="https://elsewhere.example/t/c/{foreign}">B</a>'
        f"<a href=//r.example/t/c/{foreign}>C</a>"
        f'<IMG SRC="{tracker.open_url("m1")}" alt="">'
        '<img alt="" srcset="https://other.example/t/o/abc.gif 1x">'
        '<img src="https://cdn.example/logo.png" alt="Logo">'
        '<td background="/t/o/x.gif" style="background:url(//r.example/t/o/y.gif)">'
    )
    out = tracking.strip_tracking(html, secret=secret)
    assert "/t/o/" not in out and "/t/c/" not in out
    assert "<a class=btn href='https://shop.example/a?b=1&amp;c=&#x27;2&#x27;'>A</a>" in out
    assert '<a href="#">B</a>' in out  # a token this server cannot read leads nowhere
    assert "<a href=about:blank>C</a>" in out
    # the email's own images stay; the pixel and any image from the tracking endpoints go
    assert re.findall(r"<img\b[^>]*>", out, re.IGNORECASE) == [
        '<img src="https://cdn.example/logo.png" alt="Logo">'
    ]
    assert '<td background="about:blank" style="background:url(about:blank)">' in out
