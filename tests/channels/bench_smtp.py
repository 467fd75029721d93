"""Messages/s through ``SmtpChannel`` (build + send) vs smtplib sending prebuilt messages, to aiosmtpd.

Run: ``.venv/bin/python -m tests.channels.bench_smtp`` (median of 3 runs of 2,000 messages; not a test).
"""

from __future__ import annotations

import smtplib
import statistics
import time

from rapport.channels.email import SmtpChannel, SmtpConfig
from tests.channels.bench_mime import ours
from tests.channels.test_email import email
from tests.support.smtp_sink import SmtpSink

N = 2_000


def run_channel(sink: SmtpSink) -> float:
    """Send N messages through the channel in batches of 100; return messages/s."""
    channel = SmtpChannel(SmtpConfig(host=sink.host, port=sink.port))
    messages = [email(n) for n in range(N)]
    start = time.perf_counter()
    for i in range(0, N, 100):
        results = channel.send(messages[i : i + 100])
        assert all(r.ok for r in results)
    elapsed = time.perf_counter() - start
    channel.close()
    return N / elapsed


def run_smtplib(sink: SmtpSink) -> float:
    """Send N prebuilt messages with smtplib on one connection; return messages/s."""
    prebuilt = [ours(n) for n in range(N)]
    smtp = smtplib.SMTP(sink.host, sink.port)
    start = time.perf_counter()
    for n, data in enumerate(prebuilt):
        smtp.sendmail("bounce@shop.example", [f"ada{n}@example.com"], data)
    elapsed = time.perf_counter() - start
    smtp.quit()
    return N / elapsed


def main() -> None:
    """Print the median rates."""
    with SmtpSink() as sink:
        channel = statistics.median(run_channel(sink) for _ in range(3))
        reference = statistics.median(run_smtplib(sink) for _ in range(3))
        assert len(sink.messages) == 6 * N
    print(f"SmtpChannel (build + send): {channel:,.0f} messages/s")
    print(f"smtplib, prebuilt:          {reference:,.0f} messages/s")
    print(f"ratio: {channel / reference:.2f}")


if __name__ == "__main__":
    main()
