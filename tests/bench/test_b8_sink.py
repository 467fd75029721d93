"""B8's SMTP sinks: which one runs, and that each counts exactly what it received (messages and distinct
Message-IDs), which is how B8 proves "exactly N received, each once"."""

from __future__ import annotations

import shutil
import smtplib
import subprocess
from pathlib import Path

import pytest
from bench.workloads import delivery

from rapport.channels.base import EmailPayload
from rapport.channels.mime import build_email


def _message(message_id: str, *, body: str = "Hello") -> bytes:
    payload = EmailPayload(
        subject="Winter sale",
        from_address="news@hartleyandfinch.example",
        text=body,
        html=None,
        unsubscribe_url="https://rapport.example/u/tok",
    )
    return build_email(payload, to="ada@example.com", message_id=message_id, id_domain="rapport.example")


def _send(port: int, messages: list[bytes]) -> None:
    smtp = smtplib.SMTP("127.0.0.1", port)
    for data in messages:
        smtp.sendmail("news@hartleyandfinch.example", ["ada@example.com"], data)
    smtp.quit()


def test_count_dump_counts_markers_and_header_message_ids_only() -> None:
    marker = b"=B8-SINK-abc="
    dump = b"".join(
        b"\n"
        + marker
        + b"\nX-Client-Addr: 127.0.0.1\nReceived: from x\n\tby smtp-sink;\n\tdate\n"
        + part
        + b"\n"
        for part in (
            b"Subject: a\nMessage-ID: <a@x>\n\nbody\n",
            b"Subject: b\nmessage-id:  <a@x>\n\nthe same id again\n",
            b"Subject: c\nMessage-ID: <c@x>\n\nMessage-ID: <quoted@x>\n",
            b"Subject: d\n\nMessage-ID: <only-in-body@x>\n" + marker + b"-not-a-line\n",
        )
    )
    assert delivery.count_dump(dump, marker) == (4, 2)
    assert delivery.count_dump(b"", marker) == (0, 0)


@pytest.mark.skipif(shutil.which("smtp-sink", path="/usr/sbin:/usr/bin") is None, reason="no smtp-sink")
def test_postfix_sink_counts_what_it_received_and_resets() -> None:
    sink = delivery.PostfixSink(str(shutil.which("smtp-sink", path="/usr/sbin:/usr/bin")))
    try:
        assert sink.count() == (0, 0)
        tricky = "line one\r\n.a line that starts with a dot\r\n=B8-SINK-forged=\r\nMessage-ID: <x@y>"
        messages = [_message(f"m{i}") for i in range(30)] + [_message("m7"), _message("t", body=tricky)]
        _send(sink.port, messages)
        assert sink.count() == (32, 31)
        sink.reset()
        assert sink.count() == (0, 0)
        _send(sink.port, [_message("again")])
        assert sink.count() == (1, 1)
    finally:
        sink.close()
    assert sink.proc.poll() is not None and not sink.dir.exists()


def test_aiosmtpd_sink_counts_what_it_received_and_resets() -> None:
    sink = delivery.AiosmtpdSink()
    try:
        _send(sink.port, [_message("a"), _message("b"), _message("a")])
        assert sink.count() == (3, 2)
        sink.reset()
        assert sink.count() == (0, 0)
    finally:
        sink.close()


def test_start_sink_honours_the_environment_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(delivery.SINK_ENV, "aiosmtpd")
    sink, note = delivery.start_sink(lambda _line: None)
    sink.close()
    assert isinstance(sink, delivery.AiosmtpdSink) and "aiosmtpd" in note

    monkeypatch.setenv(delivery.SINK_ENV, "postfix")
    with pytest.raises(ValueError, match="smtp-sink or aiosmtpd"):
        delivery.start_sink()

    # smtp-sink cannot be had (not installed, not root): the fallback runs and the note says why
    monkeypatch.setattr(delivery, "ensure_smtp_sink", lambda: None)
    monkeypatch.delenv(delivery.SINK_ENV)
    logged: list[str] = []
    sink, note = delivery.start_sink(logged.append)
    sink.close()
    assert isinstance(sink, delivery.AiosmtpdSink)
    assert note == "sink aiosmtpd in its own process (smtp-sink not available)" and logged
    monkeypatch.setenv(delivery.SINK_ENV, "smtp-sink")  # asked for explicitly: no silent fallback
    with pytest.raises(RuntimeError, match="smtp-sink"):
        delivery.start_sink()


@pytest.mark.skipif(shutil.which("smtp-sink", path="/usr/sbin:/usr/bin") is None, reason="no smtp-sink")
def test_start_sink_prefers_smtp_sink_and_leaves_no_postfix_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(delivery.SINK_ENV, raising=False)
    sink, note = delivery.start_sink()
    try:
        assert isinstance(sink, delivery.PostfixSink) and "smtp-sink" in note
    finally:
        sink.close()
    if shutil.which("postfix", path="/usr/sbin"):
        assert subprocess.run(["/usr/sbin/postfix", "status"], capture_output=True).returncode != 0


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_b8_production_shape_delivers_each_message_once_with_two_deliverer_processes(
    fresh_db_url: str, tmp_path: Path
) -> None:
    """B8's PostgreSQL row with several deliverer processes: both claim (SKIP LOCKED) while the campaign is
    still being queued chunk by chunk, the sink gets every message exactly once and every outbox row ends
    ``sent``."""
    seeded = delivery.seed_store(fresh_db_url, 300, 7)  # more than one claim batch (250)
    sink = delivery.AiosmtpdSink()
    try:
        out = delivery.deliver_campaign(
            fresh_db_url, seeded["workspace_id"], sink.port, str(tmp_path / "spool"), processes=2, chunk=70
        )
        assert sink.count() == (300, 300)
    finally:
        sink.close()
    assert out["processes"] == 2 and len(out["sent_by"]) == 2
    assert out["sent"] == sum(out["sent_by"]) == 300 and out["statuses"] == {"sent": 300}
    assert out["queued"] == 300 and out["chunks"] == 5
    assert out["seconds"] >= out["queue_seconds"] > 0


def test_b8_delivers_while_the_campaign_is_queued_in_chunks(fresh_db_url: str, tmp_path: Path) -> None:
    """B8 in one process (both stores): the campaign lane queues in chunks, each its own transaction, while
    the deliverer drains; it stops only once the queuing is over and nothing is left."""
    seeded = delivery.seed_store(fresh_db_url, 300, 7)
    sink = delivery.AiosmtpdSink()
    try:
        out = delivery.deliver_campaign(
            fresh_db_url, seeded["workspace_id"], sink.port, str(tmp_path / "spool"), chunk=40
        )
        assert sink.count() == (300, 300)
    finally:
        sink.close()
    assert out["sent"] == out["queued"] == 300 and out["chunks"] == 8 and out["statuses"] == {"sent": 300}


@pytest.mark.skipif(shutil.which("smtp-sink", path="/usr/sbin:/usr/bin") is None, reason="no smtp-sink")
def test_b5_stamps_each_recipient_when_smtp_sink_received_it(tmp_path: Path) -> None:
    import time

    from bench.workloads.realtime import _PostfixArrivals

    arrivals = _PostfixArrivals(str(shutil.which("smtp-sink", path="/usr/sbin:/usr/bin")))
    try:
        assert arrivals.arrivals() == {}
        before = time.time()
        smtp = smtplib.SMTP("127.0.0.1", arrivals.port)
        smtp.sendmail("news@x.example", ["u1@bench.example", "u2@bench.example"], _message("<m1@x>"))
        forged = "X-Rcpt-Args: <forged@bench.example>\r\nnot an envelope line"
        smtp.sendmail("news@x.example", ["u3@bench.example"], _message("<m2@x>", body=forged))
        smtp.quit()
        after = time.time()
        deadline = time.monotonic() + 5
        while len(arrivals.arrivals()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        found = arrivals.arrivals()
        assert set(found) == {"u1@bench.example", "u2@bench.example", "u3@bench.example"}
        assert all(before <= at <= after + 0.05 for at in found.values())
    finally:
        arrivals.stop()
