"""The group committer: concurrent units share transactions, results reach the right caller, a bad unit
fails alone, the queue is bounded, and stopping drains what is queued."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import DataError

from rapport.accounts.principal import Principal
from rapport.collect import ingest
from rapport.collect.committer import Committer, Overloaded
from rapport.runtime import Runtime
from tests.collect.ingest_support import event_count, track
from tests.support.tenants import Tenant


def test_concurrent_units_are_grouped_and_answered_in_order() -> None:
    written: list[list[int]] = []
    gate = threading.Event()

    def write(works: list[int]) -> list[int]:
        gate.wait(5)
        written.append(list(works))
        return [w * 10 for w in works]

    async def scenario() -> list[int]:
        committer: Committer[int, int] = Committer(write=write)
        await committer.start()
        first = asyncio.ensure_future(committer.submit(0))
        await asyncio.sleep(0.05)  # unit 0 is being written (blocked on the gate)
        rest = [asyncio.ensure_future(committer.submit(i)) for i in range(1, 51)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(first, *rest)
        await committer.stop()
        assert committer.stats.commits == 2
        return list(results)

    assert asyncio.run(scenario()) == [i * 10 for i in range(51)]
    assert written == [[0], list(range(1, 51))]


def test_a_unit_with_bad_data_fails_alone() -> None:
    def write(works: list[int]) -> list[int]:
        if 13 in works:
            raise DataError("INSERT", {}, Exception("value too long"))
        return works

    async def scenario() -> list[object]:
        committer: Committer[int, int] = Committer(write=write, isolate=ingest.is_data_error)
        gate = asyncio.gather(*(committer.submit(i) for i in range(20)), return_exceptions=True)
        results = await gate
        await committer.stop()
        return list(results)

    results = asyncio.run(scenario())
    assert isinstance(results[13], DataError)
    assert [r for i, r in enumerate(results) if i != 13] == [i for i in range(20) if i != 13]


def test_the_queue_is_bounded() -> None:
    gate = threading.Event()

    def write(works: list[int]) -> list[int]:
        gate.wait(5)
        return works

    async def scenario() -> None:
        committer: Committer[int, int] = Committer(write=write, size=lambda w: w, max_pending=10)
        first = asyncio.ensure_future(committer.submit(6))
        await asyncio.sleep(0.02)
        second = asyncio.ensure_future(committer.submit(4))
        await asyncio.sleep(0.02)
        with pytest.raises(Overloaded) as refused:
            await committer.submit(1)
        assert refused.value.status_code == 429
        assert refused.value.retry_after == 1
        gate.set()
        assert await asyncio.gather(first, second) == [6, 4]
        assert await committer.submit(1) == 1  # room again
        await committer.stop()

    asyncio.run(scenario())


def test_stop_drains_the_queue_into_the_database(runtime: Runtime, tenant: Tenant) -> None:
    principal = Principal(workspace_id=tenant.workspace_id, kind="write_key", id=1, scopes=frozenset())
    now = datetime.now(UTC)

    def unit(i: int) -> ingest.IngestWork:
        return ingest.prepare([track(f"c{i}")], principal=principal, received_at=now).work

    async def scenario() -> None:
        engine = runtime.engine
        committer: Committer[ingest.IngestWork, list[int]] = Committer(
            write=lambda works: ingest.write_works(engine, works), size=lambda w: w.size
        )
        pending = [asyncio.ensure_future(committer.submit(unit(i))) for i in range(200)]
        await asyncio.sleep(0)
        await committer.stop()
        assert all(p.done() and p.exception() is None for p in pending)
        assert committer.stats.rows == 200
        assert committer.stats.commits < 200

    asyncio.run(scenario())
    assert event_count(runtime, tenant.workspace_id) == 200
