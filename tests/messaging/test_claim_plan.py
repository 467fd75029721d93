"""The claim walks ``ix_messages_due`` in its own order instead of sorting every due row (migration 0010)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from rapport.messaging import repository
from rapport.runtime import Runtime


def test_claim_reads_the_due_index_in_order_without_a_sort(runtime: Runtime) -> None:
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE MESSAGES"):
            captured.append((statement, parameters))

    event.listen(runtime.engine, "before_cursor_execute", capture)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    try:
        with runtime.sessions() as db:
            repository.claim(db, worker_id="w", now=now, lease_until=now + timedelta(minutes=1), limit=250)
            db.rollback()
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)
    statement, parameters = captured[0]
    raw: Any = runtime.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if runtime.engine.dialect.name == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = " / ".join(str(row[-1]) for row in cursor.fetchall())
            assert "ix_messages_due" in plan and "TEMP B-TREE" not in plan, plan
        else:
            # With no rows the planner may prefer any plan; forbid the table scan to ask whether the index
            # can give the order: if not, a Sort node remains.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {statement}", parameters)
            plan = " / ".join(str(row[0]) for row in cursor.fetchall())
            assert "ix_messages_due" in plan and "Sort" not in plan, plan
        raw.rollback()
    finally:
        raw.close()
