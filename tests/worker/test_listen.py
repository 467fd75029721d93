"""On PostgreSQL ingest's NOTIFY wakes the event processor's lane at once, whatever its poll interval."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from rapport.collect import ingest
from rapport.collect import normalize as norm
from rapport.collect.processor import Processor
from rapport.config import Settings
from rapport.models import Event
from rapport.models.event import PROCESSED
from rapport.runtime import Runtime, build_runtime
from rapport.worker.runner import HandlerRegistry, Worker
from tests.support.tenants import make_tenant


class CountingProcessor(Processor):
    """The real processor, counting its ticks."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.ticks = 0

    def tick(self) -> int:
        """Count, then process as usual."""
        self.ticks += 1
        return super().tick()


def _state(runtime: Runtime, message_id: str) -> int | None:
    with runtime.read_sessions() as db:
        return db.scalar(select(Event.state).where(Event.message_id == message_id))


def _write(runtime: Runtime, workspace_id: int, message_id: str) -> None:
    """Commit one pending event the way the ingest edge does."""
    message = {"type": "track", "event": "Viewed", "userId": "u1", "messageId": message_id}
    result = norm.normalize(message, received_at=runtime.clock.now())
    assert isinstance(result, norm.Normalized), result
    ingest.write_works(
        runtime.engine, [ingest.IngestWork(events=[{"workspace_id": workspace_id, **result.row}])]
    )


def test_committed_events_wake_the_processor_before_its_poll(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite lanes poll")
    runtime = build_runtime(Settings(database_url=db_url, worker_poll_seconds=30.0), secret_key="x" * 32)
    tenant = make_tenant(runtime, "acme")
    processor = CountingProcessor(runtime)
    worker = Worker(runtime, HandlerRegistry())
    worker.add_tick(processor.tick)
    worker.start_thread()
    try:
        deadline = time.monotonic() + 10
        while processor.ticks < 2 and time.monotonic() < deadline:  # the first poll, then LISTEN's look
            time.sleep(0.01)
        time.sleep(0.2)  # idle now: the next poll is 30 s away
        idle_ticks = processor.ticks
        for n in range(3):
            sent = time.monotonic()
            _write(runtime, tenant.workspace_id, f"m{n}")
            while _state(runtime, f"m{n}") != PROCESSED and time.monotonic() < sent + 5:
                time.sleep(0.01)
            assert _state(runtime, f"m{n}") == PROCESSED
            assert time.monotonic() - sent < 2.0
    finally:
        worker.stop_thread()
        runtime.close()
    assert processor.ticks >= idle_ticks + 3  # woken for each commit
    assert not [t for t in threading.enumerate() if t.name == "rapport-worker-listen"]
