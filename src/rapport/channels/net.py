"""SSRF-safe outbound HTTP (R24) for SMS providers, push services, webhooks and fetched content.

Every request, and every redirect hop, goes through the same gate before a socket is opened:

1. the scheme is http or https and the host is on the allow-list (``None`` = any public host; exact names
   or ``*.example.com``);
2. the host is resolved once (``getaddrinfo``, which also reads odd IPv4 forms such as ``127.1``,
   ``2130706433`` or ``0x7f.1``); if ANY address is private, loopback, link-local (cloud metadata
   169.254.169.254, fd00:ec2::254), unspecified, multicast, reserved, shared (100.64/10) or an IPv6 form of
   such an IPv4 address (``::ffff:127.0.0.1``, NAT64, 6to4, Teredo), the request is refused;
3. the connection goes to that resolved address (the URL is rewritten to the IP; ``Host`` and TLS SNI keep
   the name, and the certificate is checked against the name), so a second DNS answer cannot rebind it.

Responses are capped in size (decoded bytes, so a gzip bomb stops too) and in time (per operation and in
total). ``allow_loopback=True`` lets tests reach their fake servers on 127.0.0.1; private ranges stay shut.
Proxies from the environment are ignored (they would bypass the pinning).

Example::

    http = SafeHttpClient(allowed_hosts={"api.twilio.com"}, max_response_bytes=64_000)
    response = http.request("POST", "https://api.twilio.com/2010-04-01/...", data={"To": "+4477..."})
    http.close()
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from rapport.errors import BadRequest, RapportError

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Errors raised before the request can have reached the server: safe to retry.
NOT_DELIVERED_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)


class OutboundRefused(BadRequest):
    """The destination is not allowed (host not on the list, or a forbidden address)."""

    code = "outbound_refused"


class ResponseTooLarge(RapportError):
    """The response body passed the size cap."""

    status_code = 502
    code = "response_too_large"


class ResponseTooSlow(RapportError):
    """The response did not complete within the total time cap."""

    status_code = 504
    code = "response_too_slow"


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with ``getaddrinfo`` (scope ids removed); unknown names are refused, a temporary
    DNS failure raises ``httpx.ConnectError`` (retryable)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:  # a temporary DNS failure: worth trying again later
            raise httpx.ConnectError(f"temporary failure resolving {host!r}") from exc
        raise OutboundRefused(f"cannot resolve {host!r}") from exc
    except UnicodeError as exc:
        raise OutboundRefused(f"cannot resolve {host!r}") from exc
    return list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_forbidden(ip: IPAddress, *, allow_loopback: bool = False) -> bool:
    """Whether an outbound connection to ``ip`` must be refused (anything not plainly public)."""
    if ip.is_loopback:
        return not allow_loopback
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and int(embedded) != 0:
            return is_forbidden(embedded, allow_loopback=allow_loopback)
        if ip in _NAT64_LOCAL:
            return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def host_allowed(host: str, allowed: frozenset[str] | None) -> bool:
    """Whether ``host`` matches the allow-list (``None`` allows any host; ``*.x`` matches subdomains)."""
    if allowed is None:
        return True
    host = host.lower().rstrip(".")
    if host in allowed:
        return True
    return any(entry.startswith("*.") and host.endswith(entry[1:]) for entry in allowed)


def may_have_arrived(exc: BaseException) -> bool:
    """Whether a request that failed with ``exc`` may still have reached the server (so: "unknown")."""
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, NOT_DELIVERED_ERRORS)


@dataclass(frozen=True, slots=True)
class SafeResponse:
    """A fully read, size-capped response."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    url: str

    def json(self) -> Any:
        """Decode the body as JSON."""
        import json

        return json.loads(self.content)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (replacing invalid bytes)."""
        return self.content.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class _Target:
    url: httpx.URL
    pinned: httpx.URL
    host: str
    host_header: str


class SafeHttpClient:
    """An httpx wrapper that only talks to allowed, public addresses; thread-safe."""

    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str] | None = None,
        allow_loopback: bool = False,
        max_response_bytes: int = 1_000_000,
        timeout: float = 10.0,
        total_timeout: float = 30.0,
        max_redirects: int = 0,
        resolver: Resolver | None = None,
        verify: Any = True,
        user_agent: str = "Rapport/0.1",
    ) -> None:
        self.allowed_hosts = (
            None if allowed_hosts is None else frozenset(h.lower().rstrip(".") for h in allowed_hosts)
        )
        self.allow_loopback = allow_loopback
        self.max_response_bytes = max_response_bytes
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.max_redirects = max_redirects
        self.resolver = resolver or system_resolver
        self.verify = verify
        self.user_agent = user_agent
        # One pool per host name: pooled connections are keyed by the pinned IP, and two names served
        # from one IP must never share a TLS connection established for the other name.
        self._clients: dict[tuple[str, str], httpx.Client] = {}
        self._lock = threading.Lock()

    def check(self, url: str | httpx.URL) -> _Target:
        """Validate ``url`` and resolve it once; raise ``OutboundRefused`` if it must not be fetched."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise OutboundRefused(f"invalid URL {url!r}") from exc
        if parsed.scheme not in ("http", "https"):
            raise OutboundRefused(f"scheme {parsed.scheme!r} is not allowed")
        host = parsed.host
        if not host:
            raise OutboundRefused("URL has no host")
        if not host_allowed(host, self.allowed_hosts):
            raise OutboundRefused(f"host {host!r} is not on the allow-list")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses = self.resolver(host, port)
        if not addresses:
            raise OutboundRefused(f"{host!r} has no address")
        ips: list[IPAddress] = []
        for text in addresses:
            try:
                ip = ipaddress.ip_address(text)
            except ValueError as exc:
                raise OutboundRefused(f"{host!r} resolved to an invalid address") from exc
            if is_forbidden(ip, allow_loopback=self.allow_loopback):
                raise OutboundRefused(f"{host!r} resolves to a forbidden address ({ip})")
            ips.append(ip)
        pinned = parsed.copy_with(host=str(ips[0]))
        host_header = host if parsed.port is None else f"{host}:{parsed.port}"
        if ":" in host and not host.startswith("["):
            host_header = f"[{host}]" if parsed.port is None else f"[{host}]:{parsed.port}"
        return _Target(parsed, pinned, host, host_header)

    def _client(self, scheme: str, host: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get((scheme, host))
            if client is None:
                client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout),
                    follow_redirects=False,
                    trust_env=False,
                    verify=self.verify,
                    limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
                )
                self._clients[(scheme, host)] = client
            return client

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        data: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> SafeResponse:
        """Send one request (following at most ``max_redirects`` re-checked redirects); read it capped."""
        deadline = time.monotonic() + self.total_timeout
        target = self.check(url)
        body_method = method.upper()
        for hop in range(self.max_redirects + 1):
            response = self._send_once(target, body_method, headers, content, data, auth, deadline)
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location or hop == self.max_redirects:
                return response
            next_url = target.url.join(location)
            if next_url.host != target.host:
                auth = None  # credentials are for the first host only
            target = self.check(next_url)
            if response.status_code in (301, 302, 303) and body_method != "HEAD":
                body_method, content, data = "GET", None, None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(
        self,
        target: _Target,
        method: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        data: Mapping[str, str] | None,
        auth: tuple[str, str] | None,
        deadline: float,
    ) -> SafeResponse:
        all_headers = {"User-Agent": self.user_agent, **(headers or {}), "Host": target.host_header}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            all_headers["Authorization"] = f"Basic {token}"
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        client = self._client(target.url.scheme, target.host)
        request = client.build_request(
            method, target.pinned, headers=all_headers, content=content, data=data, extensions=extensions
        )
        response = client.send(request, stream=True)
        try:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
                raise ResponseTooLarge(f"response of {declared} bytes exceeds {self.max_response_bytes}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise ResponseTooLarge(f"response exceeds {self.max_response_bytes} bytes")
                if time.monotonic() > deadline:
                    raise ResponseTooSlow(f"response took longer than {self.total_timeout}s")
                chunks.append(chunk)
        finally:
            response.close()
        return SafeResponse(response.status_code, response.headers, b"".join(chunks), str(target.url))

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
