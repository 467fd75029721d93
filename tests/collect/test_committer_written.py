"""``on_written``: the committer tells the in-process worker after each committed group, so the processor
starts at once instead of at its next poll."""

from __future__ import annotations

import asyncio
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.collect import ingest
from rapport.collect import normalize as norm
from rapport.collect.committer import Committer
from rapport.collect.ingest import PENDING_CHANNEL
from rapport.collect.processor import Processor
from rapport.config import Settings
from rapport.models import Event
from rapport.models.event import PROCESSED
from rapport.runtime import Runtime, build_runtime
from rapport.worker.runner import WAKE_PORT, HandlerRegistry, Worker, notify_work
from tests.collect.ingest_support import basic
from tests.support.tenants import Tenant, make_tenant


def test_a_committed_group_wakes_the_processor_before_its_poll(db_url: str) -> None:
    runtime = build_runtime(Settings(database_url=db_url, worker_poll_seconds=30.0), secret_key="x" * 32)
    tenant = make_tenant(runtime, "acme")
    writer = ingest.IngestWriter(runtime.engine)
    committer: Committer[ingest.IngestWork, list[int]] = Committer(
        write=writer.write, on_written=lambda: notify_work(runtime), on_idle=writer.release
    )
    worker = Worker(runtime, HandlerRegistry())
    worker.add_tick(Processor(runtime).tick)
    worker.start_thread()

    def work(message_id: str) -> ingest.IngestWork:
        message = {"type": "track", "event": "Viewed", "userId": "u1", "messageId": message_id}
        result = norm.normalize(message, received_at=runtime.clock.now())
        assert isinstance(result, norm.Normalized), result
        return ingest.IngestWork(events=[{"workspace_id": tenant.workspace_id, **result.row}])

    def state(message_id: str) -> int | None:
        with runtime.read_sessions() as db:
            return db.scalar(select(Event.state).where(Event.message_id == message_id))

    async def scenario() -> list[float]:
        await committer.start()
        await asyncio.sleep(0.3)  # the processor lane has looked once and sleeps its 30 s poll
        took = []
        for n in range(3):
            sent = time.monotonic()
            await committer.submit(work(f"m{n}"))
            while state(f"m{n}") != PROCESSED and time.monotonic() < sent + 5:
                await asyncio.sleep(0.01)
            took.append(time.monotonic() - sent)
        await committer.stop()
        return took

    try:
        took = asyncio.run(scenario())
    finally:
        worker.stop_thread()
        runtime.close()
    assert all(state_time < 2.0 for state_time in took), took


def test_on_written_runs_only_after_a_commit_and_cannot_fail_one() -> None:
    calls: list[int] = []

    def write(works: list[int]) -> list[int]:
        if any(w < 0 for w in works):
            raise ValueError("bad unit")
        return works

    def written() -> None:
        calls.append(1)
        raise RuntimeError("the wake-up failed")

    async def scenario() -> tuple[int, BaseException | int]:
        committer: Committer[int, int] = Committer(write=write, on_written=written)
        await committer.start()
        good = await committer.submit(5)
        try:
            bad: BaseException | int = await committer.submit(-1)
        except ValueError as exc:
            bad = exc
        await committer.stop()
        return good, bad

    good, bad = asyncio.run(scenario())
    assert good == 5 and isinstance(bad, ValueError)
    assert calls == [1]  # the failed group woke nobody


def test_the_api_committer_wakes_the_in_process_worker(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    """``build_ingest`` wires ``on_written`` to the runtime's wake port: an accepted event wakes the worker."""
    woken: list[str | None] = []
    runtime.ports[WAKE_PORT] = lambda channel=None: woken.append(channel)
    message = {"type": "track", "event": "Viewed", "userId": "u1", "messageId": "wake-1"}
    assert client.post("/v1/track", json=message, headers=basic(tenant.write_key)).status_code == 200
    # called after the group commit, before the answer (2xx only after durable); only the lanes of new
    # events (the processor's), not every lane of the worker
    assert woken == [PENDING_CHANNEL]
