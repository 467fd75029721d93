"""SSRF-safe outbound HTTP (R24), against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import gzip
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rapport.channels.net import (
    OutboundRefused,
    ResponseTooLarge,
    ResponseTooSlow,
    SafeHttpClient,
    is_forbidden,
)
from tests.channels.certs import self_signed
from tests.channels.local_http import LocalHttpServer, Recorded, Reply


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://017700000001/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::1]/",
        "http://localhost/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://224.0.0.1/",
    ],
)
def test_private_loopback_link_local_and_metadata_addresses_are_refused(url: str) -> None:
    client = SafeHttpClient()
    started = time.monotonic()
    with pytest.raises(OutboundRefused):
        client.request("GET", url)
    assert time.monotonic() - started < 1  # refused before any connection attempt


def test_loopback_switch_opens_loopback_only() -> None:
    client = SafeHttpClient(allow_loopback=True)
    client.check("http://127.1:8080/")
    client.check("http://[::1]:8080/")
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://[fd00::1]/"):
        with pytest.raises(OutboundRefused):
            client.check(url)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address))


def test_allow_list_and_scheme() -> None:
    client = SafeHttpClient(
        allowed_hosts={"api.example.com", "*.push.example.net"}, resolver=lambda h, p: ["8.8.8.8"]
    )
    client.check("https://api.example.com/x")
    client.check("https://eu.push.example.net/x")
    for url in (
        "https://evil.example.com/",
        "https://push.example.net.evil.io/",
        "ftp://api.example.com/",
        "file:///etc/passwd",
    ):
        with pytest.raises(OutboundRefused):
            client.check(url)


def test_any_forbidden_answer_refuses_and_the_connection_goes_to_the_resolved_address() -> None:
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if host == "hooks.test" else ["127.0.0.1", "10.0.0.1"]

    with LocalHttpServer() as server:
        client = SafeHttpClient(allow_loopback=True, resolver=resolver)
        response = client.request("POST", f"http://hooks.test:{server.port}/in?a=1", content=b"hello")
        with pytest.raises(OutboundRefused):
            client.request("GET", f"http://mixed.test:{server.port}/")
        client.close()
    assert response.status_code == 200 and response.content == b"ok"
    [seen] = server.requests
    assert (seen.method, seen.path, seen.body) == ("POST", "/in?a=1", b"hello")
    assert seen.headers["host"] == f"hooks.test:{server.port}"  # pinned IP, original name
    assert calls == ["hooks.test", "mixed.test"]  # resolved once per request


def _redirect_to(location: str) -> LocalHttpServer:
    def respond(request: Recorded) -> Reply:
        if request.path == "/start":
            return Reply(302, {"Location": location})
        return Reply(200, body=b"final")

    return LocalHttpServer(respond)


def test_redirect_to_a_private_address_is_refused_before_connecting() -> None:
    with _redirect_to("http://10.0.0.1/admin") as server:
        client = SafeHttpClient(allow_loopback=True, max_redirects=3, timeout=30)
        started = time.monotonic()
        with pytest.raises(OutboundRefused, match=r"10\.0\.0\.1"):
            client.request("GET", server.url("/start"))
        assert time.monotonic() - started < 2
        unfollowed = SafeHttpClient(allow_loopback=True).request("GET", server.url("/start"))
    assert unfollowed.status_code == 302  # with redirects off the 3xx is returned as it is
    assert [r.path for r in server.requests] == ["/start", "/start"]


def test_redirects_are_followed_and_rechecked_within_the_limit() -> None:
    with _redirect_to("/final") as server:
        client = SafeHttpClient(allow_loopback=True, max_redirects=1, allowed_hosts={"127.0.0.1"})
        response = client.request("POST", server.url("/start"), content=b"x")
    assert response.content == b"final"
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/start"), ("GET", "/final")]
    with _redirect_to("http://elsewhere.example/") as server:
        client = SafeHttpClient(allow_loopback=True, max_redirects=1, allowed_hosts={"127.0.0.1"})
        with pytest.raises(OutboundRefused, match="allow-list"):
            client.request("GET", server.url("/start"))


def test_response_size_is_capped_even_when_compressed_or_chunked() -> None:
    def respond(request: Recorded) -> Reply:
        if request.path == "/big":
            return Reply(body=b"x" * 50_000)
        if request.path == "/bomb":
            return Reply(headers={"Content-Encoding": "gzip"}, body=gzip.compress(b"\0" * 5_000_000))
        return Reply(body=iter([b"y" * 4096] * 20))

    with LocalHttpServer(respond) as server:
        client = SafeHttpClient(allow_loopback=True, max_response_bytes=10_000)
        for path in ("/big", "/bomb", "/chunked"):
            with pytest.raises(ResponseTooLarge):
                client.request("GET", server.url(path))
        client.close()


def test_time_caps() -> None:
    def drip() -> Iterator[bytes]:
        for _ in range(30):
            time.sleep(0.1)
            yield b"."

    def respond(request: Recorded) -> Reply:
        if request.path == "/stall":
            time.sleep(1.5)
        return Reply(body=drip()) if request.path == "/drip" else Reply()

    with LocalHttpServer(respond) as server:
        with pytest.raises(httpx.ReadTimeout):
            SafeHttpClient(allow_loopback=True, timeout=0.3).request("GET", server.url("/stall"))
        started = time.monotonic()
        with pytest.raises(ResponseTooSlow):
            SafeHttpClient(allow_loopback=True, timeout=1, total_timeout=0.5).request(
                "GET", server.url("/drip")
            )
        assert time.monotonic() - started < 1.5


def test_https_to_the_pinned_address_still_verifies_the_certificate_for_the_name(tmp_path: Path) -> None:
    server_ctx, client_ctx = self_signed(tmp_path, dns=("hooks.test",))
    resolved: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    with LocalHttpServer(tls=server_ctx) as server:
        client = SafeHttpClient(allow_loopback=True, resolver=resolver, verify=client_ctx)
        response = client.request("GET", server.url("/x", host="hooks.test"))
        assert response.status_code == 200
        # the same address under a name the certificate does not carry: the TLS check fails
        with pytest.raises(httpx.ConnectError, match="certificate"):
            client.request("GET", server.url("/x", host="other.test"))
        client.close()
    assert resolved == ["hooks.test", "other.test"]
    assert server.requests[0].headers["host"] == f"hooks.test:{server.port}"


def test_unknown_names_never_reach_a_connection() -> None:
    # refused when the resolver says "no such name"; a retryable ConnectError where DNS is unreachable
    with pytest.raises((OutboundRefused, httpx.ConnectError), match="resolv"):
        SafeHttpClient().check("https://no-such-host.invalid/")
