"""The SMTP adapter against a real aiosmtpd server on 127.0.0.1, once as aiosmtpd comes (no PIPELINING) and
once offering PIPELINING (RFC 2920), which the adapter then uses for MAIL, RCPT and DATA."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rapport.channels.base import EmailPayload, OutboundMessage, SendStatus
from rapport.channels.email import SmtpChannel, SmtpConfig
from tests.channels.certs import self_signed
from tests.support import smtp_sink as sink_module
from tests.support.smtp_sink import DROP, SinkMessage, SmtpSink, free_port

TEXT = "Hi Ada,\nyour offers are in.\n.\nA line that starts with a dot above.\n"
HTML = "<p>Hi <b>Ada</b> — your offers are in.</p>\n"


async def _offer_pipelining(
    self: object, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
) -> list[str]:
    session.host_name = hostname
    return [*responses[:-1], "250-PIPELINING", responses[-1]]


@pytest.fixture(autouse=True, params=["plain", "pipelining"])
def server_flavour(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs against both: aiosmtpd as it is, and aiosmtpd offering PIPELINING."""
    if request.param == "pipelining":
        monkeypatch.setattr(sink_module._Handler, "handle_EHLO", _offer_pipelining, raising=False)
    return str(request.param)


def email(n: int, *, to: str | None = None, **changes: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "subject": f"Offer {n} for you 🎉",
        "from_address": "news@shop.example",
        "from_name": "Shop",
        "to_name": "Ada Lovelace",
        "text": TEXT,
        "html": HTML,
        "unsubscribe_url": f"https://shop.example/u/TOKEN{n}",
        "envelope_from": f"bounce+{n}@bounces.shop.example",
    }
    fields.update(changes)
    return OutboundMessage(
        message_id=f"cmp1-p{n}-email",
        channel="email",
        to=to or f"ada{n}@example.com",
        email=EmailPayload(**fields),  # type: ignore[arg-type]
    )


def channel_for(sink: SmtpSink, **config: object) -> SmtpChannel:
    return SmtpChannel(SmtpConfig(host=sink.host, port=sink.port, timeout=5, **config))  # type: ignore[arg-type]


def test_message_arrives_intact_with_separate_envelope_sender(smtp_sink: SmtpSink) -> None:
    channel = channel_for(smtp_sink)
    [result] = channel.send([email(1)])
    channel.close()

    assert result.status is SendStatus.SENT
    [got] = smtp_sink.wait_for(1)
    assert result.provider_id == "Q000001"
    assert got.mail_from == "bounce+1@bounces.shop.example"
    assert got.rcpt_tos == ["ada1@example.com"]
    parsed = got.parsed()
    assert parsed["Subject"] == "Offer 1 for you 🎉"
    assert parsed["From"] == "Shop <news@shop.example>"
    assert parsed["Message-ID"] == "<cmp1-p1-email@shop.example>"
    assert parsed["List-Unsubscribe"] == "<https://shop.example/u/TOKEN1>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text_part = parsed.get_body(("plain",))
    html_part = parsed.get_body(("html",))
    assert text_part is not None and html_part is not None
    assert text_part.get_payload(decode=True) == TEXT.replace("\n", "\r\n").encode()
    assert html_part.get_payload(decode=True) == HTML.replace("\n", "\r\n").encode()


def test_many_messages_share_one_connection_across_batches(smtp_sink: SmtpSink) -> None:
    channel = channel_for(smtp_sink)
    first = channel.send([email(n) for n in range(30)])
    second = channel.send([email(n) for n in range(30, 50)])
    channel.close()

    assert [r.status for r in first + second] == [SendStatus.SENT] * 50
    received = smtp_sink.wait_for(50)
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(f"ada{n}@example.com" for n in range(50))
    assert smtp_sink.connection_count == 1
    assert channel.connections_opened == 1


def test_rcpt_replies_are_classified_per_recipient_and_the_connection_survives() -> None:
    replies = {"busy@example.com": "450 4.2.1 Mailbox busy", "nobody@example.com": "550 5.1.1 No such user"}
    with SmtpSink(rcpt_reply=replies.get) as sink:
        channel = channel_for(sink)
        results = channel.send(
            [
                email(1, to="busy@example.com"),
                email(2, to="nobody@example.com"),
                email(3, to="ok@example.com"),
            ]
        )
        channel.close()
        assert [r.status for r in results] == [
            SendStatus.FAILED_TRANSIENT,
            SendStatus.FAILED_PERMANENT,
            SendStatus.SENT,
        ]
        assert results[0].error_code == "450" and results[1].error_code == "550"
        assert "No such user" in (results[1].error or "")
        assert [m.rcpt_tos for m in sink.wait_for(1)] == [["ok@example.com"]]
        assert sink.connection_count == 1


def test_end_of_data_replies_are_classified() -> None:
    def decide(message: SinkMessage) -> str | None:
        to = message.rcpt_tos[0]
        return {
            "full@example.com": "452 4.3.1 Insufficient storage",
            "spam@example.com": "554 5.7.1 Rejected",
        }.get(to)

    with SmtpSink(data_reply=decide) as sink:
        channel = channel_for(sink)
        results = channel.send([email(1, to="full@example.com"), email(2, to="spam@example.com"), email(3)])
        channel.close()
        assert [r.status for r in results] == [
            SendStatus.FAILED_TRANSIENT,
            SendStatus.FAILED_PERMANENT,
            SendStatus.SENT,
        ]
        assert len(sink.wait_for(1)) == 1


def test_connection_lost_after_end_of_data_is_unknown_and_not_resent() -> None:
    with SmtpSink(data_reply=lambda m: DROP if m.rcpt_tos == ["lost@example.com"] else None) as sink:
        channel = channel_for(sink)
        results = channel.send([email(1, to="lost@example.com"), email(2)])
        channel.close()
        assert results[0].status is SendStatus.UNKNOWN
        assert results[0].error_code == "lost_ack"
        assert results[1].status is SendStatus.SENT  # the next message reconnects
        received = sink.wait_for(2)
        time.sleep(0.1)
        assert sorted(m.rcpt_tos[0] for m in received) == ["ada2@example.com", "lost@example.com"]
        assert len(sink.messages) == 2  # exactly one copy of the maybe-sent message
        assert sink.connection_count == 2


def test_header_injection_gives_one_recipient_and_one_subject(smtp_sink: SmtpSink) -> None:
    first_name = "x\r\nBcc: evil@x"
    message = email(
        1,
        subject=f"Hello {first_name}",
        to_name=first_name,
        from_name=f"Shop {first_name}",
        headers=(("X-Campaign", first_name),),
    )
    channel = channel_for(smtp_sink)
    [result] = channel.send([message])
    channel.close()

    assert result.status is SendStatus.SENT
    [got] = smtp_sink.wait_for(1)
    assert got.rcpt_tos == ["ada1@example.com"]
    parsed = got.parsed()
    assert parsed.get_all("Subject") == ["Hello x  Bcc: evil@x"]
    assert parsed.get_all("Bcc") is None
    assert parsed.get_all("To") == ['"x Bcc: evil@x" <ada1@example.com>']
    assert b"\r\nBcc:" not in got.content


def test_injected_recipient_address_is_refused_without_contacting_the_server(smtp_sink: SmtpSink) -> None:
    channel = channel_for(smtp_sink)
    results = channel.send([email(1, to="ada@example.com\r\nRCPT TO:<evil@x>"), email(2, to="no-at-sign")])
    channel.close()
    assert [r.status for r in results] == [SendStatus.FAILED_PERMANENT] * 2
    assert {r.error_code for r in results} == {"invalid_message"}
    assert smtp_sink.connection_count == 0


def test_stale_pooled_connection_is_reopened() -> None:
    sink = SmtpSink()
    sink.controller.SMTP_kwargs["timeout"] = 0.3  # the server drops idle clients after 0.3 s
    with sink:
        channel = channel_for(sink)
        assert channel.send([email(1)])[0].status is SendStatus.SENT
        time.sleep(0.8)
        [result] = channel.send([email(2)])
        channel.close()
        assert result.status is SendStatus.SENT
        assert len(sink.wait_for(2)) == 2
        assert channel.connections_opened == 2


def test_unreachable_server_is_transient() -> None:
    channel = SmtpChannel(SmtpConfig(host="127.0.0.1", port=free_port(), timeout=2))
    results = channel.send([email(1), email(2)])
    assert [r.status for r in results] == [SendStatus.FAILED_TRANSIENT] * 2
    assert "cannot connect" in (results[0].error or "")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_credentials() -> None:
    with SmtpSink(credentials=("relay", "s3cret")) as sink:
        good = channel_for(sink, username="relay", password="s3cret")
        bad = channel_for(sink, username="relay", password="wrong")
        assert good.send([email(1)])[0].status is SendStatus.SENT
        assert bad.send([email(2)])[0].status is SendStatus.FAILED_TRANSIENT
        good.close()
        bad.close()
        assert [m.rcpt_tos for m in sink.wait_for(1)] == [["ada1@example.com"]]


def test_concurrent_batches_use_at_most_pool_size_connections(smtp_sink: SmtpSink) -> None:
    channel = channel_for(smtp_sink, pool_size=3)
    statuses: list[SendStatus] = []
    lock = threading.Lock()

    def worker(start: int) -> None:
        for batch in range(5):
            base = start + batch * 5
            results = channel.send([email(n) for n in range(base, base + 5)])
            with lock:
                statuses.extend(r.status for r in results)

    threads = [threading.Thread(target=worker, args=(k * 100,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    channel.close()

    assert statuses == [SendStatus.SENT] * 150
    received = smtp_sink.wait_for(150)
    assert len({m.rcpt_tos[0] for m in received}) == 150
    assert channel.connections_opened <= 3


def test_starttls_and_implicit_tls(tmp_path: Path) -> None:
    server_ctx, client_ctx = self_signed(tmp_path, ips=("127.0.0.1",))
    with SmtpSink(starttls_context=server_ctx) as sink:
        plain = channel_for(sink)
        assert plain.send([email(1)])[0].status is SendStatus.FAILED_PERMANENT  # 530 must issue STARTTLS
        secure = channel_for(sink, security="starttls", ssl_context=client_ctx)
        assert secure.send([email(2)])[0].status is SendStatus.SENT
        untrusted = channel_for(sink, security="starttls")  # the system store does not know this cert
        assert untrusted.send([email(3)])[0].status is SendStatus.FAILED_TRANSIENT
        for channel in (plain, secure, untrusted):
            channel.close()
        assert [m.rcpt_tos for m in sink.wait_for(1)] == [["ada2@example.com"]]
    with SmtpSink(implicit_tls_context=server_ctx) as sink:
        smtps = channel_for(sink, security="ssl", ssl_context=client_ctx)
        assert smtps.send([email(4)])[0].status is SendStatus.SENT
        smtps.close()
        assert [m.rcpt_tos for m in sink.wait_for(1)] == [["ada4@example.com"]]


def test_parallel_batches_split_a_large_batch_across_connections_in_order(smtp_sink: SmtpSink) -> None:
    channel = channel_for(smtp_sink, pool_size=3, parallel_batches=True)
    batch = [email(n) for n in range(60)]
    results = channel.send(batch)
    small = channel.send([email(n) for n in range(60, 70)])  # under 2 x PARALLEL_CHUNK: one connection
    channel.close()

    assert [r.message_id for r in results] == [m.message_id for m in batch]
    assert [r.status for r in results + small] == [SendStatus.SENT] * 70
    received = smtp_sink.wait_for(70)
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(f"ada{n}@example.com" for n in range(70))
    assert channel.connections_opened == 3


def test_pipelining_sends_mail_rcpt_and_data_as_one_group(
    smtp_sink: SmtpSink, server_flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    grouped: list[bool] = []
    plain_rcpt = sink_module._Handler.handle_RCPT

    async def handle_rcpt(
        self: Any, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        grouped.append(b"DATA\r\n" in bytes(server._reader._buffer))  # sent before RCPT was answered?
        return await plain_rcpt(self, server, session, envelope, address, options)

    monkeypatch.setattr(sink_module._Handler, "handle_RCPT", handle_rcpt)
    for config in ({}, {"pipelining": False}):
        grouped.clear()
        channel = channel_for(smtp_sink, **config)
        results = channel.send([email(n) for n in range(5)])
        channel.close()
        assert [r.status for r in results] == [SendStatus.SENT] * 5
        assert grouped == [server_flavour == "pipelining" and not config] * 5


def test_refused_mail_from_fails_that_message_and_the_connection_goes_on(
    smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_mail = sink_module._Handler.handle_MAIL

    async def handle_mail(
        self: Any, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("bounce+1@"):
            return "451 4.3.0 Try again later"
        if address.startswith("bounce+2@"):
            return "553 5.1.8 Sender refused"
        return await plain_mail(self, server, session, envelope, address, options)

    monkeypatch.setattr(sink_module._Handler, "handle_MAIL", handle_mail)
    channel = channel_for(smtp_sink)
    results = channel.send([email(1), email(2), email(3)])
    channel.close()
    assert [r.status for r in results] == [
        SendStatus.FAILED_TRANSIENT,
        SendStatus.FAILED_PERMANENT,
        SendStatus.SENT,
    ]
    assert results[0].error is not None and results[0].error.startswith("MAIL FROM: 451")
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [["ada3@example.com"]]
    time.sleep(0.1)
    assert len(smtp_sink.messages) == 1 and smtp_sink.connection_count == 1


def test_next_envelope_rides_with_the_final_dot_of_the_message_before(
    smtp_sink: SmtpSink, server_flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a pipelining server a message's MAIL, RCPT and DATA go out in the write that ends the message
    before it (one round trip a message); never on a server without PIPELINING, never after the last."""
    chained: list[bool] = []
    plain_data = sink_module._Handler.handle_DATA

    async def handle_data(self: Any, server: Any, session: Any, envelope: Any) -> str:
        chained.append(b"MAIL FROM:" in bytes(server._reader._buffer))  # already here with the "."?
        return str(await plain_data(self, server, session, envelope))

    monkeypatch.setattr(sink_module._Handler, "handle_DATA", handle_data)
    for config in ({}, {"pipelining": False}):
        chained.clear()
        channel = channel_for(smtp_sink, **config)
        results = channel.send([email(n) for n in range(5)])
        channel.close()
        assert [r.status for r in results] == [SendStatus.SENT] * 5
        pipelined = server_flavour == "pipelining" and not config
        assert chained == [pipelined] * 4 + [False]


def test_a_message_that_cannot_be_built_breaks_no_chain(smtp_sink: SmtpSink) -> None:
    channel = channel_for(smtp_sink)
    batch = [email(1), email(2, to="x@example.com\r\nRCPT TO:<evil@x.example>"), email(3), email(4)]
    results = channel.send(batch)
    channel.close()
    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.FAILED_PERMANENT,
        SendStatus.SENT,
        SendStatus.SENT,
    ]
    received = smtp_sink.wait_for(3)
    time.sleep(0.1)
    assert sorted(m.rcpt_tos[0] for m in received) == [
        "ada1@example.com",
        "ada3@example.com",
        "ada4@example.com",
    ]
    assert len(smtp_sink.messages) == 3 and smtp_sink.connection_count == 1
