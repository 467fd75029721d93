"""Events are indexed by (workspace, name, time) once linked to a profile (migration 0013).

Ingest writes an event without a profile; the processor links it. ``ix_events_workspace_name_time`` holds
linked events only, so ingest does not write it and the processor adds each entry once. Every reader of
events by workspace and name or time asks for linked events, which both databases need to see before they
may use a partial index: each statement those readers run is captured and explained on the real database
(PostgreSQL with sequential scans off: can it use the index?).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from rapport.accounts.principal import Principal
from rapport.catalog import repository as catalog_repo
from rapport.collect.importer import import_event_rows, import_profile_rows
from rapport.collect.ingest import append_events, prepare
from rapport.collect.processor import Processor
from rapport.runtime import Runtime
from rapport.segments import catalog_service
from rapport.web import segments_builder, series
from tests.support.statements import calls, explain
from tests.support.tenants import make_tenant

INDEX = "ix_events_workspace_name_time"
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
DAY = date(2026, 11, 24)


def _readers(ws: int) -> dict[str, Callable[[Session], Any]]:
    return {
        "latest purchase times": lambda db: catalog_repo.latest_purchase_times(db, ws, ["Order"]),
        "purchase events": lambda db: list(catalog_repo.purchase_events(db, ws, ["Order"])),
        "events per day by name": lambda db: series.events_per_day(("Order",))(db, ws, DAY, DAY),
        "events per day": lambda db: series.events_per_day()(db, ws, DAY, DAY),
        "events per day by suffix": lambda db: series.events_per_day(suffix="_sent")(db, ws, DAY, DAY),
        "has events by name": lambda db: series.has_events(db, ws, ("email_sent",)),
        "segment movements": lambda db: segments_builder.recent_movements(db, workspace_id=ws, now=NOW),
        "event names": lambda db: catalog_service._event_names(db, ws),
    }


def _seed(runtime: Runtime) -> int:
    ws = make_tenant(runtime, slug="names").workspace_id
    import_profile_rows(runtime, workspace_id=ws, rows=[{"user_id": f"u{i}"} for i in range(3)])
    orders = [
        {"type": "track", "event": "Order", "userId": f"u{i}", "messageId": f"o{i}",
         "timestamp": (NOW - timedelta(hours=i)).isoformat()}
        for i in range(3)
    ]  # fmt: skip
    import_event_rows(runtime, workspace_id=ws, rows=orders)
    return ws


def test_the_index_holds_linked_events_only(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        found = {ix["name"]: ix for ix in inspect(conn).get_indexes("events")}
    options = found[INDEX].get("dialect_options", {})
    where = options.get(f"{runtime.engine.dialect.name}_where")
    assert "profile_id IS NOT NULL" in str(where)


@pytest.mark.parametrize("reader", list(_readers(0)))
def test_every_reader_by_name_and_time_can_use_the_index(runtime: Runtime, reader: str) -> None:
    ws = _seed(runtime)
    with calls(runtime, lambda statement: "events" in statement) as captured, runtime.sessions() as db:
        _readers(ws)[reader](db)
    assert captured, reader
    for statement, parameters in captured:
        plan = explain(runtime, statement, parameters)
        assert INDEX in plan, (reader, statement, plan)


def test_a_pending_event_is_counted_once_the_processor_links_it(runtime: Runtime) -> None:
    ws = _seed(runtime)
    principal = Principal(workspace_id=ws, kind="write_key", id=1, scopes=frozenset())
    message = {"type": "track", "event": "Order", "userId": "u0", "messageId": "late",
               "timestamp": NOW.isoformat()}  # fmt: skip
    with runtime.sessions() as db:
        append_events(db, prepare([message], principal=principal, received_at=NOW).work.events)
        db.commit()
    with runtime.sessions() as db:
        assert series.events_per_day(("Order",))(db, ws, DAY, DAY) == {DAY: 3}
        assert catalog_service._event_names(db, ws) == {"Order"}
    Processor(runtime).run_batch(ws)
    with runtime.sessions() as db:
        assert series.events_per_day(("Order",))(db, ws, DAY, DAY) == {DAY: 4}
