"""The committer's writer: a group of events commits as one statement on SQLite, whatever its size."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import sys
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from rapport.app import create_app
from rapport.collect import api as collect_api
from rapport.collect import ingest
from rapport.models import Event
from rapport.runtime import Runtime, build_runtime
from tests.collect.ingest_support import basic, event_count, track
from tests.collect.test_ingest_storage import _row
from tests.support.tenants import Tenant


@pytest.mark.parametrize(
    ("n", "size"), [(1, 1), (2, 2), (3, 4), (64, 64), (65, 128), (256, 256), (257, 512), (2000, 2048)]
)
def test_statement_sizes_come_in_buckets(n: int, size: int) -> None:
    assert ingest._bucket(n, 2048) == size
    assert ingest._bucket(n, 1792) == min(size, 1792)


@pytest.mark.parametrize("n", [1, 3, 65, 300, 2100])
def test_a_group_stores_every_row_once_in_order(runtime: Runtime, tenant: Tenant, n: int) -> None:
    """Padding a statement to its bucket repeats the last row; the repeat is skipped, not stored."""
    rows = [_row(tenant.workspace_id, f"m-{i}") for i in range(n)]
    if n > 1:
        rows[1] = _row(tenant.workspace_id, "m-0")  # a repeat inside the group: the first one is kept
        rows[1]["event"] = "second"
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        ingest.write_works(
            runtime.engine,
            [ingest.IngestWork(events=rows[: n // 2]), ingest.IngestWork(events=rows[n // 2 :])],
        )
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)
    with runtime.read_sessions() as db:
        stored = list(db.scalars(select(Event).order_by(Event.id)))
    expected = [f"m-{i}" for i in range(n) if not (n > 1 and i == 1)]
    assert [e.message_id for e in stored] == expected
    assert stored[0].event == "Ünïcode ✓"
    if runtime.engine.dialect.name == "sqlite" and n <= 2048:
        assert statements == []  # no BEGIN/COMMIT through SQLAlchemy: one driver statement did it all


def test_a_repeat_of_an_earlier_group_is_skipped(runtime: Runtime, tenant: Tenant) -> None:
    first = [_row(tenant.workspace_id, f"r-{i}") for i in range(5)]
    ingest.write_works(runtime.engine, [ingest.IngestWork(events=first)])
    again = [_row(tenant.workspace_id, f"r-{i}") for i in range(3, 9)]
    ingest.write_works(runtime.engine, [ingest.IngestWork(events=again)])
    with runtime.read_sessions() as db:
        ids = sorted(db.scalars(select(Event.message_id)))
    assert ids == sorted(f"r-{i}" for i in range(9))


def test_one_statement_is_its_own_durable_transaction(
    tmp_path: Any, runtime: Runtime, tenant: Tenant
) -> None:
    """What the one-statement path leaves behind is committed: another connection reads it at once."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("the one-statement path is SQLite's")
    ingest.write_works(runtime.engine, [ingest.IngestWork(events=[_row(tenant.workspace_id, "seen")])])
    path = runtime.engine.url.database
    assert path
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT count(*) FROM events WHERE message_id = 'seen'").fetchone() == (1,)
    finally:
        other.close()


def test_starting_ingest_tunes_the_process_once(runtime: Runtime) -> None:
    state = collect_api.build_ingest(runtime)
    before = sys.getswitchinterval()
    collect_api._tuned = False
    try:
        asyncio.run(_start_stop(state))
        assert sys.getswitchinterval() <= collect_api.SWITCH_INTERVAL
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before)


async def _start_stop(state: collect_api.IngestState) -> None:
    await state.start()
    await state.stop()


def test_two_api_processes_share_one_database(runtime: Runtime, tenant: Tenant) -> None:
    """Several API processes against one database: each has its own committer and connection; the same
    batches sent to both, at once, are all acknowledged and every event is stored exactly once (R1)."""
    second = build_runtime(runtime.settings)
    apps = [
        create_app(runtime.settings, runtime=runtime, start_worker=False),
        create_app(second.settings, runtime=second, start_worker=False),
    ]
    batches = [{"batch": [track(f"w-{b}-{i}") for i in range(150)]} for b in range(4)]
    statuses: list[int] = []

    def send(app: Any) -> None:
        with TestClient(app) as client:
            for body in batches:
                statuses.append(
                    client.post("/v1/batch", json=body, headers=basic(tenant.write_key)).status_code
                )

    try:
        threads = [threading.Thread(target=send, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        second.close()
    assert statuses == [200] * 8
    assert event_count(runtime, tenant.workspace_id) == 600
