"""An idle deliverer only reads: every processed batch wakes it, and on SQLite a write transaction to find
nothing would queue behind (and then block) the ingest writer and the processor for the one writer lock."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from rapport.kit.clock import FakeClock
from rapport.messaging.delivery import Deliverer
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.messaging.test_delivery import queue, statuses
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

NOON = datetime(2026, 11, 18, 11, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


def _writes(runtime: Runtime) -> tuple[list[str], Any]:
    seen: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("UPDATE", "INSERT", "DELETE"):
            seen.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", capture)
    return seen, capture


def test_an_idle_tick_writes_nothing_and_a_due_message_is_still_claimed_and_sent(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, clock: FakeClock
) -> None:
    [pid] = make_people(runtime, tenant, 1)
    later = queue(runtime, tenant, pid, "later:1")
    assert later is not None
    with runtime.sessions() as db:  # queued for tomorrow: not due yet
        db.get(type(later), later.id).run_at = NOON + timedelta(days=1)  # type: ignore[union-attr]
        db.commit()
    deliverer.recover()  # the periodic recovery read, out of the way
    seen, capture = _writes(runtime)
    try:
        assert deliverer.tick() == 0
        assert seen == []  # nothing due: no claim UPDATE, no transaction that writes
        clock.advance(timedelta(days=1, minutes=1))
        assert deliverer.tick() == 1
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)
    assert any(s.lstrip().upper().startswith("UPDATE MESSAGES") for s in seen)  # the claim ran
    assert len(sink.wait_for(1)) == 1 and statuses(runtime) == {"sent": 1}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_idle_tick_does_not_wait_for_the_sqlite_writer_lock(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer
) -> None:
    """Another connection holds SQLite's writer lock (the ingest writer or the processor mid-batch): an idle
    tick finishes at once instead of queueing for the lock it does not need."""
    path = runtime.engine.url.database
    assert path
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(deliverer.tick()), daemon=True)
    try:
        worker.start()
        worker.join(timeout=20)  # a tick that asked for the lock would still be waiting (or fail)
        assert not worker.is_alive()
        assert outcome == [0]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        worker.join(timeout=60)


def test_rows_left_sending_past_the_lease_by_a_vanished_worker_become_unknown_never_resent(
    runtime: Runtime, tenant: Tenant, deliverer: Deliverer, sink: SmtpSink, clock: FakeClock
) -> None:
    """A worker on another host died mid-send (no journal here): once its lease is ``unknown_after`` past,
    recovery settles its rows as unknown (the provider may have them) instead of sending them again; a
    lease still running is left alone."""
    from sqlalchemy import select, update

    from rapport.models import Message

    pids = make_people(runtime, tenant, 2)
    gone, live = (queue(runtime, tenant, pid, f"lease:{pid}") for pid in pids)
    assert gone is not None and live is not None
    with runtime.sessions() as db:
        for message, until in ((gone, NOON - timedelta(minutes=20)), (live, NOON + timedelta(minutes=4))):
            db.execute(
                update(Message)
                .where(Message.id == message.id)
                .values(status="sending", claimed_by="other-host-worker", claimed_until=until)
            )
        db.commit()
    assert deliverer.recover() == 1
    with runtime.read_sessions() as db:
        found = dict(db.execute(select(Message.id, Message.status)).all())
    assert found == {gone.id: "unknown", live.id: "sending"}
    assert deliverer.drain().sent == 0 and sink.messages == []
