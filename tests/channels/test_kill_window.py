"""R6/R8 at the SMTP adapter: kill -9 a process sending with the real send journal, many times at random.

After each kill, every message the journal says "committing" without "accepted" (recovery: unknown, never
resent) must be at the server, and every message of the batch in flight that the server has must be in
the journal (else recovery would send it again). A thread in the child keeps the interpreter busy, as the
deliverer does while it renders the next batch: before the final "." went out as a non-blocking write,
the socket's poll released the GIL between the journal line and the "." and this found messages
"unknown" that the server never got (one connection: 4 kills in 150 without the busy thread). Only the
default, one connection per batch, is held to it (parallel connections stay opt-in).
``RAPPORT_KILL_WINDOW_KILLS`` sets the number of kills per mode (default 60).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rapport.messaging import journal as send_journal
from tests.support.smtp_sink import SmtpSink

KILLS = int(os.environ.get("RAPPORT_KILL_WINDOW_KILLS") or 60)
BATCH = 64

CHILD = """
import sys, threading
from pathlib import Path
from rapport.channels.base import EmailPayload, OutboundMessage
from rapport.channels.email import SmtpChannel, SmtpConfig
from rapport.messaging.journal import SendJournal

BATCH = {batch}
port, spool, tag, parallel = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
journal = SendJournal(spool, tag)
channel = SmtpChannel(
    SmtpConfig(host="127.0.0.1", port=port, pool_size=4, parallel_batches=parallel), id_domain="k.example"
)
payload = EmailPayload(subject="Hi", from_address="a@k.example", text="hello\\n" * 40, html="<p>hi</p>" * 100)

def busy():
    n = 0
    while True:
        n = (n * 31 + 7) & 0xFFFFF

threading.Thread(target=busy, daemon=True).start()
print("ready", flush=True)
n = 0
while True:
    batch = [
        OutboundMessage(message_id=f"{tag}-{n + i}", channel="email", to=f"p{n + i}@k.example", email=payload)
        for i in range(BATCH)
    ]
    n += len(batch)
    channel.send(batch, journal=journal)
    journal.reset()  # as the deliverer does once the batch is settled
""".replace("{batch}", str(BATCH))


@pytest.mark.slow
def test_kill_minus_nine_never_leaves_unknown_unsent_or_sent_unjournaled(tmp_path: Path) -> None:
    # The default, one connection per batch. Parallel connections (opt-in) are not held to this: under the
    # load of the parallel suite the harness still found messages "unknown" that were never sent with
    # them (see the docstring of rapport.channels.email).
    parallel = False
    rng = random.Random(20261123)
    spool = tmp_path / "spool"
    spool.mkdir()
    unknown_unsent: list[str] = []
    unjournaled: list[str] = []
    maybe_sent = 0
    with SmtpSink() as sink:
        for kill in range(KILLS):
            tag = f"k{kill}"
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(sink.port), str(spool), tag, "1" if parallel else "0"],
                stdout=subprocess.PIPE,
            )
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.05, 0.5))
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            time.sleep(0.2)  # the sink finishes what it read before the connection closed
            state = send_journal.read(spool / f"{tag}.journal")
            with sink.lock:
                received = {m.parsed()["Message-ID"].strip("<>").split("@")[0] for m in sink.messages}
                received = {m for m in received if m.startswith(tag + "-")}
                sink.messages.clear()
            for message_id in state.committing - set(state.accepted):
                if message_id in received:
                    maybe_sent += 1  # the legitimate "unknown": the "." left, the 250 never came back
                else:
                    unknown_unsent.append(message_id)
            in_flight = state.committing | set(state.accepted)
            if in_flight:
                first = min(int(m.split("-")[1]) for m in in_flight) // BATCH * BATCH
                unjournaled += [
                    m for m in received if int(m.split("-")[1]) >= first and m not in state.committing
                ]
            (spool / f"{tag}.journal").unlink()
    assert unknown_unsent == [], f"journalled 'maybe sent' but never sent ({maybe_sent} truly maybe-sent)"
    assert unjournaled == [], "at the server but not in the journal: recovery would send them again"
