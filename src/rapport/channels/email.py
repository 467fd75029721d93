"""Email over SMTP with a small pool of persistent connections.

Each ``send(batch)`` borrows one connection (opening it if none is idle), sends the messages one after the
other, and gives it back for the next batch; up to ``pool_size`` batches run in parallel from different
threads. When the server offers PIPELINING (RFC 2920; ``SmtpConfig.pipelining``, on by default) MAIL FROM,
RCPT TO and DATA go as one write and their replies are read in order, and each message's group rides in
the write that carries the final "." of the message before it (content may open a group): one round trip
a message instead of four. Each message is built (MIME) while the server answers the one before. The
message, dot-stuffed and ended with its final ``.`` beforehand, goes out in one write (the body and the
``.`` in two writes only when it is bigger than half the socket's send buffer).

With ``SmtpConfig.parallel_batches`` (opt-in) a large batch (``PARALLEL_CHUNK`` messages per connection
or more) is split across up to ``pool_size`` connections that work in parallel. A worker killed mid-batch
then has up to one message per connection between its journal's ``committing`` line and its final ``.``.
That span is the journal store (a shared memory mapping, ``messaging/journal.py``, which does not release
the GIL) and a non-blocking socket write (``_write_committed``): no system call and no wait stand between
them, a few bytecodes do (a forced GIL switch or the OS preempting the thread there stays possible: the
span is microseconds, not zero). Before that write was non-blocking, the socket's poll released the GIL there, and a stress
run of the R6 crash test with parallel connections (4,000 recipients, 40 kills, load 10) found a message
"unknown" that the server never got; ``tests/channels/test_kill_window.py`` (slow) reproduces that kind of
failure. With one connection it finds none since; with several it still found two in 40 kills in a CI run
(load from the parallel test suite), so the window is narrower but not closed there. It stays off by
default, and one pipelined connection is not what limits delivery (the worker's render and database work
is), so it buys little.

Outcomes, per recipient:

- 250 after the end-of-data ``.`` → sent (``provider_id`` is the server's queue id when it says one);
- a 4xx reply at any step → failed_transient; a 5xx reply → failed_permanent;
- connection lost or timed out BEFORE the final ``.`` was written → failed_transient (the server cannot
  have accepted a message whose data never ended); a stale pooled connection is reopened and the message
  retried once when that happens before MAIL FROM was accepted;
- connection lost or timed out AFTER the ``.`` was written but before the reply → unknown (R8, RFC 1047):
  the server may have queued it, so the caller must not resend blindly; the Message-ID, derived from the
  message_id, is stable if it does.

With a ``SendJournal`` (``send(batch, journal=…)``), ``committing`` is written just before the write that
carries the message's final ``.``, and ``accepted`` after the 250: a worker killed at any point leaves a
record of exactly which messages the server may have.

The envelope sender (bounce address) is separate from ``From``: ``EmailPayload.envelope_from``, else
``SmtpConfig.envelope_from``, else the From address.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Literal

from rapport.channels.base import (
    NULL_JOURNAL,
    OutboundMessage,
    SendJournal,
    SendResult,
    SendStatus,
    permanent,
    transient,
)
from rapport.channels.mime import DkimSigner, MimeError, build_email, check_address

#: A batch is split across parallel connections only in parts of at least this many messages.
PARALLEL_CHUNK = 16
_QUEUE_ID = re.compile(r"queued as ([A-Za-z0-9._@-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to connect; ``security`` is ``none``, ``starttls`` or ``ssl`` (implicit TLS);
    ``pipelining`` sends MAIL, RCPT and DATA as one group when the server offers PIPELINING (RFC 2920)."""

    host: str = "127.0.0.1"
    port: int = 25
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    pool_size: int = 4
    max_messages_per_connection: int = 1000
    idle_seconds: float = 30.0
    envelope_from: str | None = None
    local_hostname: str | None = None
    parallel_batches: bool = False
    ssl_context: ssl.SSLContext | None = None
    pipelining: bool = True


class _StageError(Exception):
    """A reply that ends this message's transaction (after RSET)."""

    def __init__(self, stage: str, code: int, text: str) -> None:
        super().__init__(f"{stage}: {code} {text}")
        self.stage = stage
        self.code = code
        self.text = text


#: A message ready for the wire: the message, its dot-stuffed data ending with the final ".", the sender and
#: the recipient (both checked by ``check_address``).
_Prepared = tuple[OutboundMessage, bytes, str, str]


def _envelope(sender: str, to: str) -> bytes:
    """The pipelined MAIL, RCPT, DATA group. Both addresses are plain dot-atom ``local@domain``
    (``check_address``), which ``smtplib.quoteaddr`` would only wrap in <>."""
    return f"MAIL FROM:<{sender}>\r\nRCPT TO:<{to}>\r\nDATA\r\n".encode("ascii")


def _chainable(after: _Prepared | SendResult | None) -> tuple[str, bytes] | None:
    """The next message's id and envelope when it can ride with this message's end, else None."""
    if after is None or isinstance(after, SendResult):
        return None
    message, _data, sender, to = after
    if not (sender + to).isascii():
        return None
    return message.message_id, _envelope(sender, to)


@dataclass
class _Connection:
    smtp: smtplib.SMTP
    sent: int = 0
    last_used: float = 0.0
    broken: bool = False
    pipelining: bool = False
    one_write: int = 0  # a message this long or shorter goes out with its final "." in one write
    envelope_for: str | None = None  # the message whose envelope went out with the previous one's "."


class SmtpChannel:
    """Sends email through one SMTP server (a relay, Postfix, an ESP's SMTP endpoint); thread-safe."""

    supports_journal = True
    #: needs no database: the deliverer may send a batch from a thread while it prepares the next one
    sends_in_background = True

    def __init__(
        self,
        config: SmtpConfig,
        *,
        id_domain: str | None = None,
        dkim: DkimSigner | None = None,
        name: str = "email",
    ) -> None:
        self.name = name
        self.config = config
        self.id_domain = id_domain
        self.dkim = dkim
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.pool_size)
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self.connections_opened = 0

    # -- connections -------------------------------------------------------------------------------------

    def _connect(self) -> _Connection:
        cfg = self.config
        context = None
        if cfg.security != "none":  # loading the system's CA certificates costs ~10 ms a connection
            context = cfg.ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if cfg.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout)
        try:
            smtp.ehlo()
            if cfg.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
        except BaseException:
            smtp.close()
            raise
        one_write = 0
        if smtp.sock is not None:
            # the end-of-data "." may go out as its own small write (see _transaction): without NODELAY,
            # Nagle's algorithm would hold it until the server's delayed ACK, ~40 ms per message
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # half the send buffer (Linux reports it doubled), one TLS record at most under TLS
            one_write = smtp.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2
            if isinstance(smtp.sock, ssl.SSLSocket):
                one_write = min(one_write, 16384)
        with self._lock:
            self.connections_opened += 1
        pipelining = cfg.pipelining and smtp.does_esmtp and smtp.has_extn("pipelining")
        return _Connection(smtp, last_used=time.monotonic(), pipelining=bool(pipelining), one_write=one_write)

    def _acquire(self) -> _Connection:
        if self._closed:
            raise RuntimeError(f"channel {self.name!r} is closed")
        if not self._slots.acquire(timeout=self.config.timeout):
            raise TimeoutError("no SMTP connection became free")
        try:
            while True:
                with self._lock:
                    conn = self._idle.pop() if self._idle else None
                if conn is None:
                    return self._connect()
                if time.monotonic() - conn.last_used <= self.config.idle_seconds:
                    return conn
                self._discard(conn)  # servers drop idle clients; do not gamble on it
        except BaseException:
            self._slots.release()
            raise

    def _release(self, conn: _Connection | None) -> None:
        try:
            if conn is None:
                return
            if conn.envelope_for is not None:  # an envelope in flight whose message never followed
                conn.broken = True
            if conn.broken or self._closed or conn.sent >= self.config.max_messages_per_connection:
                self._discard(conn, polite=not conn.broken)
                return
            conn.last_used = time.monotonic()
            with self._lock:
                self._idle.append(conn)
        finally:
            self._slots.release()

    @staticmethod
    def _discard(conn: _Connection, *, polite: bool = True) -> None:
        try:
            if polite:
                conn.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            conn.smtp.close()

    # -- sending -----------------------------------------------------------------------------------------

    def send(self, batch: Sequence[OutboundMessage], journal: SendJournal | None = None) -> list[SendResult]:
        """Send the messages over pooled connections (a large batch is split across up to ``pool_size``
        connections working in parallel) and classify the server's answers; results in batch order."""
        notes = journal if journal is not None else NULL_JOURNAL
        parts = (
            min(self.config.pool_size, len(batch) // PARALLEL_CHUNK) if self.config.parallel_batches else 1
        )
        if parts < 2:
            return self._send_serial(batch, notes)
        size = -(-len(batch) // parts)
        chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.config.pool_size, thread_name_prefix=f"smtp-{self.name}"
                )
            executor = self._executor
        futures = [executor.submit(self._send_serial, chunk, notes) for chunk in chunks]
        return [result for future in futures for result in future.result()]

    def _send_serial(self, batch: Sequence[OutboundMessage], notes: SendJournal) -> list[SendResult]:
        """Send each message over one pooled connection, one after the other.

        Each message is built (``_prepare``) while the server answers the envelope of the one before, and
        on a pipelining server its envelope (MAIL, RCPT, DATA) rides in the write that carries the final
        "." of the one before (RFC 2920 lets message content open a group): one round trip a message,
        with the build in its shadow. A message is always built before anything of it is written, so one
        that cannot be built is never started on the wire."""
        results: list[SendResult] = []
        conn: _Connection | None = None
        holding = False  # a pool slot is taken (released with ``conn``, even when that is None)
        ahead: list[_Prepared | SendResult] = []

        def upcoming(index: int) -> _Prepared | SendResult | None:
            if index < len(batch) and len(ahead) == index:
                ahead.append(self._prepare(batch[index]))
            return ahead[index] if index < len(batch) else None

        try:
            for index in range(len(batch)):
                item = upcoming(index)
                assert item is not None
                if isinstance(item, SendResult):
                    results.append(item)
                    continue
                if not holding:  # the first message that can go opens (or borrows) the connection
                    try:
                        conn = self._acquire()
                    except (OSError, smtplib.SMTPException, TimeoutError) as exc:
                        error = f"cannot connect: {type(exc).__name__}: {exc}"
                        for rest in range(index, len(batch)):
                            left = upcoming(rest)
                            assert left is not None
                            results.append(
                                left if isinstance(left, SendResult) else transient(left[0], error)
                            )
                        return results
                    holding = True
                result, conn = self._deliver(conn, *item, notes, partial(upcoming, index + 1))
                results.append(result)
        finally:
            if holding:
                self._release(conn)
        return results

    def _prepare(self, message: OutboundMessage) -> _Prepared | SendResult:
        payload = message.email
        if payload is None:
            return permanent(message, "message has no email payload", code="no_payload")
        try:
            data = build_email(
                payload,
                to=message.to,
                message_id=message.message_id,
                id_domain=self.id_domain,
                dkim=self.dkim,
            )
            # dot-stuffed and ended with its final "." now, so that nothing but the journal line stands
            # between the server's 354 and the write that commits the message (see _transaction)
            data = dot_stuff(data)
            data += b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n"
            sender = check_address(payload.envelope_from or self.config.envelope_from or payload.from_address)
            to = check_address(message.to)
        except MimeError as exc:
            return permanent(message, str(exc), code="invalid_message")
        except Exception as exc:  # e.g. DKIM signing with a broken key: a configuration problem
            return transient(message, f"cannot build: {type(exc).__name__}: {exc}", code="build_failed")
        return message, data, sender, to

    def _deliver(
        self,
        conn: _Connection | None,
        message: OutboundMessage,
        data: bytes,
        sender: str,
        to: str,
        journal: SendJournal,
        upcoming: Callable[[], _Prepared | SendResult | None],
    ) -> tuple[SendResult, _Connection | None]:
        """Send one message; reopen a dead pooled connection once if it died before MAIL was accepted.
        ``upcoming`` builds (once) and returns the message that follows on this connection, if any."""
        for attempt in (1, 2):
            if conn is None or conn.broken:
                if conn is not None:
                    self._discard(conn, polite=False)
                    conn = None
                try:
                    conn = self._connect()
                except (OSError, smtplib.SMTPException) as exc:
                    return transient(message, f"cannot connect: {type(exc).__name__}: {exc}"), None
            stage = "connect"
            try:
                return self._transaction(conn, message, data, sender, to, journal, upcoming), conn
            except _Disconnected as lost:
                conn.broken = True
                stage = lost.stage
                error = lost.error
            if stage == "data-end":
                return SendResult(
                    message.message_id, SendStatus.UNKNOWN, error=error, error_code="lost_ack"
                ), conn
            if stage != "mail" or attempt == 2:
                return transient(message, error, code="connection_lost"), conn
        raise AssertionError("unreachable")  # pragma: no cover

    def _transaction(
        self,
        conn: _Connection,
        message: OutboundMessage,
        data: bytes,
        sender: str,
        to: str,
        journal: SendJournal,
        upcoming: Callable[[], _Prepared | SendResult | None],
    ) -> SendResult:
        smtp = conn.smtp
        stage = "mail"
        chained, conn.envelope_for = conn.envelope_for == message.message_id, None
        try:
            if conn.pipelining and (sender + to).isascii():
                # one write, one wait instead of three: the replies come back in order (RFC 2920); the
                # envelope may already have gone out with the previous message's final "."
                if not chained:
                    smtp.send(_envelope(sender, to))
                after = upcoming()  # the next message's build, while the server answers
                replies: list[tuple[int, bytes]] = []
                for stage in ("mail", "rcpt", "data"):  # noqa: B007 - ``stage`` names where a loss happened
                    replies.append(smtp.getreply())
                    if replies[-1][0] in (421, -1):  # closing: the other replies will not come
                        break
                self._expect_group(conn, replies)
                follow = _chainable(after)
            else:
                code, text = smtp.mail(sender)
                self._expect(conn, "MAIL FROM", code, text, (250,))
                stage = "rcpt"
                code, text = smtp.rcpt(to)
                self._expect(conn, "RCPT TO", code, text, (250, 251))
                stage = "data"
                code, text = smtp.docmd("DATA")
                self._expect(conn, "DATA", code, text, (354,))
                follow = None
            # the next message's envelope rides in the write that ends this one (content may open a group,
            # RFC 2920): written with this message's "." or not at all, so a lost connection leaves no
            # envelope of a message that was never started
            extra = follow[1] if follow is not None else b""
            if journal is NULL_JOURNAL:
                smtp.send(data + extra)
            elif len(data) + len(extra) <= conn.one_write:
                # the message and its "." in one write, straight after the journal line: the kernel
                # takes it whole (the server read everything before it answered DATA, so the send
                # buffer is empty)
                self._write_committed(conn, journal, message.message_id, data + extra)
            else:
                # too big for one write: the body first (the server cannot accept it without its ".")
                body = memoryview(data)
                smtp.send(body[:-3])
                self._write_committed(conn, journal, message.message_id, bytes(body[-3:]) + extra)
            stage = "data-end"  # from here on the server may have the whole message
            if follow is not None:
                conn.envelope_for = follow[0]
            else:
                upcoming()  # built while the server takes this one in (once: a no-op if already built)
            code, text = smtp.getreply()
            conn.sent += 1
            self._expect(conn, "end of data", code, text, (250,))
        except _StageError as exc:
            return self._classify(message, exc)
        except (smtplib.SMTPException, OSError) as exc:
            # disconnected, timed out, or a reply smtplib could not read: the connection is unusable
            raise _Disconnected(stage, f"{type(exc).__name__} during {stage}: {exc}") from exc
        reply = text.decode("utf-8", "replace")
        found = _QUEUE_ID.search(reply)
        provider_id = found.group(1) if found else (reply.split()[-1] if reply.split() else None)
        with contextlib.suppress(OSError):  # the "committing" line already prevents a blind resend
            journal.accepted(message.message_id, provider_id)
        return SendResult(message.message_id, SendStatus.SENT, provider_id=provider_id)

    @staticmethod
    def _write_committed(
        conn: _Connection, journal: SendJournal, message_id: str, tail: bytes | memoryview
    ) -> None:
        """Write the journal's ``committing`` line, then ``tail`` (which ends with the final "."), with
        nothing between the two that lets another thread take the interpreter.

        A socket with a timeout polls before every send, with the GIL released: another thread (the
        deliverer rendering the next batch) could then hold the interpreter for a switch interval while
        the line says "maybe sent" and the "." has not left, and a kill in that span leaves a message
        "unknown" that the server never got. Non-blocking, ``send`` goes straight to the system call.
        """
        sock = conn.smtp.sock
        assert sock is not None
        timeout = sock.gettimeout()
        sock.setblocking(False)  # releases the interpreter: before the line, not after it
        try:
            journal.committing(message_id)
            try:
                sent = sock.send(tail)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):  # a full buffer: rare
                sent = 0
        finally:
            sock.settimeout(timeout)
        if sent < len(tail):
            sock.sendall(memoryview(tail)[sent:])

    def _expect_group(self, conn: _Connection, replies: list[tuple[int, bytes]]) -> None:
        """Check the replies to a pipelined MAIL, RCPT, DATA group; the first refusal decides."""
        steps = (("MAIL FROM", (250,)), ("RCPT TO", (250, 251)), ("DATA", (354,)))
        failed = next((i for i, (code, _t) in enumerate(replies) if code not in steps[i][1]), None)
        if failed is None:
            return
        if len(replies) == 3 and replies[2][0] == 354:
            # DATA was accepted although MAIL or RCPT was not (no recipient): end the empty message first
            conn.smtp.send(b".\r\n")
            conn.smtp.getreply()
        stage, ok = steps[failed]
        self._expect(conn, stage, *replies[failed], ok)

    @staticmethod
    def _expect(conn: _Connection, stage: str, code: int, raw: bytes | str, ok: tuple[int, ...]) -> None:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if code in ok:
            return
        if code == 421 or code == -1:  # the server is closing this connection
            conn.broken = True
        elif stage != "end of data":
            try:
                conn.smtp.rset()
            except (smtplib.SMTPException, OSError):
                conn.broken = True
        raise _StageError(stage, code, text)

    @staticmethod
    def _classify(message: OutboundMessage, exc: _StageError) -> SendResult:
        error = f"{exc.stage}: {exc.code} {exc.text}"
        if 400 <= exc.code < 500 or exc.code == -1:
            return transient(message, error, code=str(exc.code))
        return permanent(message, error, code=str(exc.code))

    def close(self) -> None:
        """Close the idle connections; batches still running close theirs when they finish."""
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        for conn in idle:
            self._discard(conn)


def dot_stuff(data: bytes) -> bytes:
    """Double every "." that starts a line (RFC 5321 4.5.2); ``bytes.replace`` instead of a multiline
    regex, which tried every position of the message under the interpreter lock."""
    if b"\n." in data:
        data = data.replace(b"\n.", b"\n..")
    return b"." + data if data.startswith(b".") else data


class _Disconnected(Exception):
    def __init__(self, stage: str, error: str) -> None:
        super().__init__(error)
        self.stage = stage
        self.error = error
