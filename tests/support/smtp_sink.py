"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it receives and can misbehave on request.

Usage::

    with SmtpSink() as sink:
        ...send to sink.host, sink.port...
        sink.wait_for(10)
        assert sink.messages[0].rcpt_tos == ["ada@example.com"]

Behaviours: ``rcpt_reply(address)`` and ``data_reply(message)`` may return an SMTP reply such as
``"450 4.2.1 try later"`` or ``"550 5.1.1 no such user"`` to refuse; ``data_reply`` may return ``DROP`` to
keep the message but cut the connection before answering the end of data (a lost acknowledgement).
``starttls_context`` requires STARTTLS with that server context; ``implicit_tls_context`` serves SMTPS.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

DROP = "DROP"


@dataclass(frozen=True)
class SinkMessage:
    """One message as the sink received it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: tuple[str, int]

    def parsed(self) -> EmailMessage:
        """Parse the raw content with the stdlib parser (policy=default)."""
        message = BytesParser(policy=policy.default).parsebytes(self.content)
        assert isinstance(message, EmailMessage)
        return message


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.sink.lock:
            self.sink.peers.add(tuple(session.peer))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.sink.rcpt_reply(address) if self.sink.rcpt_reply else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = SinkMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            content=bytes(envelope.original_content or envelope.content),
            peer=tuple(session.peer),
        )
        reply = self.sink.data_reply(message) if self.sink.data_reply else None
        if reply and reply != DROP:
            with self.sink.lock:
                self.sink.refused.append(message)
            return reply
        with self.sink.lock:
            self.sink.messages.append(message)
            self.sink.queue_ids += 1
            queue_id = f"Q{self.sink.queue_ids:06d}"
        if reply == DROP:
            server.transport.abort()  # the message is stored, the acknowledgement never leaves
        return f"250 2.0.0 Ok: queued as {queue_id}"


class SmtpSink:
    """An aiosmtpd server in a background thread; thread-safe recording."""

    def __init__(
        self,
        *,
        rcpt_reply: Callable[[str], str | None] | None = None,
        data_reply: Callable[[SinkMessage], str | None] | None = None,
        credentials: tuple[str, str] | None = None,
        starttls_context: ssl.SSLContext | None = None,
        implicit_tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.credentials = credentials
        self.lock = threading.Lock()
        self.messages: list[SinkMessage] = []
        self.refused: list[SinkMessage] = []
        self.peers: set[tuple[Any, ...]] = set()
        self.queue_ids = 0
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False, "auth_required": True}
        if starttls_context is not None:
            kwargs.update(tls_context=starttls_context, require_starttls=True)
        if implicit_tls_context is not None:
            kwargs.update(ssl_context=implicit_tls_context)
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.credentials is not None
            and (data.login.decode(), data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        """Start serving."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[SinkMessage]:
        """Wait until at least ``count`` messages arrived; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.01)
        with self.lock:
            raise AssertionError(f"expected {count} messages, got {len(self.messages)}")

    @property
    def connection_count(self) -> int:
        """How many distinct client connections issued MAIL FROM."""
        with self.lock:
            return len(self.peers)
