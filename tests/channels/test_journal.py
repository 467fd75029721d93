"""Adapters write the send journal at the point of no return, so a killed worker can be settled exactly."""

from __future__ import annotations

import threading

from rapport.channels.base import OutboundMessage, SendStatus, WebhookPayload
from rapport.channels.email import SmtpChannel, SmtpConfig
from rapport.channels.fake import FakeChannel
from rapport.channels.net import SafeHttpClient
from rapport.channels.webhook import WebhookChannel
from rapport.kit.clock import FakeClock
from tests.channels.local_http import LocalHttpServer, Recorded, Reply
from tests.channels.test_email import email
from tests.support.smtp_sink import DROP, SinkMessage, SmtpSink


class ListJournal:
    """Records journal lines in order, like the worker's journal file."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def committing(self, message_id: str) -> None:
        with self.lock:
            self.lines.append(f"C {message_id}")

    def accepted(self, message_id: str, provider_id: str | None) -> None:
        with self.lock:
            self.lines.append(f"A {message_id} {provider_id}")

    def has(self, line: str) -> bool:
        with self.lock:
            return line in self.lines


def test_smtp_journals_before_the_final_dot_and_after_the_250() -> None:
    journal = ListJournal()
    seen_committing: list[bool] = []

    def data_reply(message: SinkMessage) -> str | None:
        # the server has the whole message only once the "." arrived: by then "C" must be on record
        message_id = message.parsed()["Message-ID"].split("@")[0].lstrip("<")
        seen_committing.append(journal.has(f"C {message_id}"))
        return DROP if message.rcpt_tos == ["lost@example.com"] else None

    refuse = {"nobody@example.com": "550 5.1.1 No such user"}
    with SmtpSink(rcpt_reply=refuse.get, data_reply=data_reply) as sink:
        channel = SmtpChannel(SmtpConfig(host=sink.host, port=sink.port, timeout=5))
        batch = [email(1), email(2, to="nobody@example.com"), email(3, to="lost@example.com"), email(4)]
        results = channel.send(batch, journal=journal)
        channel.close()

    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.FAILED_PERMANENT,
        SendStatus.UNKNOWN,
        SendStatus.SENT,
    ]
    assert seen_committing == [True, True, True]
    assert journal.lines == [
        "C cmp1-p1-email",
        f"A cmp1-p1-email {results[0].provider_id}",
        # p2 was refused at RCPT: the server never had it, nothing to journal
        "C cmp1-p3-email",  # the acknowledgement was lost: recovery reads "unknown"
        "C cmp1-p4-email",
        f"A cmp1-p4-email {results[3].provider_id}",
    ]


def test_http_adapters_journal_before_the_request() -> None:
    journal = ListJournal()
    committed_at_arrival: list[bool] = []

    def respond(request: Recorded) -> Reply:
        committed_at_arrival.append(journal.has(f"C {request.headers['x-rapport-message-id']}"))
        return Reply(500) if request.path == "/down" else Reply(200)

    with LocalHttpServer(respond) as server:
        channel = WebhookChannel(secret="s", http=SafeHttpClient(allow_loopback=True), clock=FakeClock())
        batch = [
            OutboundMessage(
                f"w{n}", "webhook", path, webhook=WebhookPayload(url=server.url(path), body={"n": n})
            )
            for n, path in enumerate(["/ok", "/down"])
        ]
        results = channel.send(batch, journal=journal)
        channel.close()
    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.FAILED_TRANSIENT]
    assert committed_at_arrival == [True, True]
    assert journal.lines == ["C w0", "A w0 None", "C w1"]


def test_fake_journals_like_a_real_adapter() -> None:
    journal = ListJournal()
    channel = FakeChannel(outcomes={"cmp1-p2-email": SendStatus.FAILED_TRANSIENT})
    results = channel.send([email(1), email(2)], journal=journal)
    assert journal.lines == [
        "C cmp1-p1-email",
        f"A cmp1-p1-email {results[0].provider_id}",
        "C cmp1-p2-email",
    ]


def test_smtp_journals_before_the_final_dot_for_a_message_too_big_for_one_write() -> None:
    journal = ListJournal()
    seen_committing: list[bool] = []

    def data_reply(message: SinkMessage) -> str | None:
        message_id = message.parsed()["Message-ID"].split("@")[0].lstrip("<")
        seen_committing.append(journal.has(f"C {message_id}"))
        return None

    with SmtpSink(data_reply=data_reply) as sink:
        channel = SmtpChannel(SmtpConfig(host=sink.host, port=sink.port, timeout=10))
        [small] = channel.send([email(1)], journal=journal)
        limit = channel._idle[0].one_write  # what fits in one write on this connection
        assert limit > 0
        big = email(2, html=("<p>" + "x" * 76 + "</p>\n") * (limit // 80 + 100))
        [large] = channel.send([big], journal=journal)
        channel.close()
        received = sink.wait_for(2, timeout=20)

    assert small.status is SendStatus.SENT and large.status is SendStatus.SENT
    assert len(received[1].content) > limit  # the big one did take the two-write path
    assert seen_committing == [True, True]
    assert journal.lines == [
        "C cmp1-p1-email",
        f"A cmp1-p1-email {small.provider_id}",
        "C cmp1-p2-email",
        f"A cmp1-p2-email {large.provider_id}",
    ]
