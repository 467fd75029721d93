"""R7: concurrent workers never claim the same row — every Message-ID arrives exactly once at the SMTP sink.

Eight worker threads, each with its own runtime (engine, connection pool, SMTP connections) and Deliverer,
drain one outbox at the same time. On PostgreSQL they claim with ``FOR UPDATE SKIP LOCKED``; on SQLite the
writer lock serialises claims (a smaller run there). CI size: 8 workers × 5,000 messages on PostgreSQL;
``RAPPORT_R7_SCALE=full`` runs the requirement's 50,000.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rapport.app import wire_runtime
from rapport.channels.email import SmtpChannel, SmtpConfig
from rapport.kit.clock import FakeClock
from rapport.messaging import service as messaging_service
from rapport.messaging.delivery import Deliverer, RoundStats, channels_of
from rapport.models import Message
from rapport.runtime import Runtime, build_runtime
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import NOON
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

WORKERS = 8
FULL = os.environ.get("RAPPORT_R7_SCALE") == "full"
MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.IGNORECASE | re.MULTILINE)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


def _size(backend: str) -> tuple[int, int]:
    """(profiles, messages per profile)."""
    if backend == "sqlite":
        return 100, 5
    return (5_000, 10) if FULL else (1_000, 5)


def _enqueue(runtime: Runtime, tenant: Tenant, ids: list[int], per_profile: int) -> None:
    with runtime.sessions() as db:
        for n in range(per_profile):
            for pid in ids:
                messaging_service.enqueue(
                    db,
                    workspace_id=tenant.workspace_id,
                    profile_id=pid,
                    channel="email",
                    kind="service",
                    content={"subject": "Order update {{ data.n }}", "text": "Hello", "data": {"n": n}},
                    dedupe_key=f"r7:{pid}:{n}",
                    now=NOON,
                )
            db.commit()


@pytest.mark.slow
def test_concurrent_workers_send_every_message_exactly_once(
    runtime: Runtime, tenant: Tenant, sink: SmtpSink, backend: str, tmp_path: Path
) -> None:
    profiles, per_profile = _size(backend)
    total = profiles * per_profile
    ids = make_people(runtime, tenant, profiles, consent=None)
    _enqueue(runtime, tenant, ids, per_profile)

    runtimes: list[Runtime] = []
    deliverers: list[Deliverer] = []
    for i in range(WORKERS):
        rt = build_runtime(runtime.settings, clock=runtime.clock)
        wire_runtime(rt)
        channels_of(rt)["email"] = SmtpChannel(SmtpConfig(host=sink.host, port=sink.port, pool_size=1))
        runtimes.append(rt)
        d = Deliverer(rt, worker_id=f"r7-worker-{i}", batch_size=50)
        d.journal  # noqa: B018 — open (and lock) the journal as a worker does at start
        deliverers.append(d)

    totals: list[RoundStats] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(WORKERS)

    def work(d: Deliverer) -> None:
        try:
            barrier.wait()
            totals.append(d.drain())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(d,)) for d in deliverers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    elapsed = time.monotonic() - started
    for d, rt in zip(deliverers, runtimes, strict=True):
        d.close()
        channels_of(rt)["email"].close()
        rt.close()
    assert not errors, errors

    with runtime.read_sessions() as db:
        not_sent = db.execute(
            select(Message.status, Message.status_reason, Message.last_error).where(Message.status != "sent")
        ).all()
    assert not not_sent, not_sent[:5]
    received = sink.wait_for(total, timeout=30)
    ids_seen = Counter(m.group(1).decode() for msg in received for m in [MESSAGE_ID.search(msg.content)] if m)
    with runtime.read_sessions() as db:
        expected = set(db.scalars(select(Message.message_id)).all())
        open_rows = db.scalar(select(func.count()).select_from(Message).where(Message.status != "sent"))
    assert open_rows == 0
    assert len(received) == total
    assert {k.split("@", 1)[0] for k in ids_seen} == expected
    assert max(ids_seen.values()) == 1, [k for k, v in ids_seen.items() if v > 1][:5]
    assert sum(t.sent for t in totals) == total
    busy = [t.sent for t in totals if t.sent]
    print(f"R7 {backend}: {total} messages, {WORKERS} workers, {elapsed:.1f}s, per worker {sorted(busy)}")
    if backend == "postgresql":
        assert len(busy) > 1, "the claims were not concurrent"
