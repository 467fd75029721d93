"""The claim walks ``ix_messages_due`` in its own order instead of sorting every due row (migration 0010)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rapport.messaging import repository
from rapport.runtime import Runtime
from tests.support.statements import calls, explain


def test_claim_reads_the_due_index_in_order_without_a_sort(runtime: Runtime) -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    claims = calls(runtime, lambda s: s.lstrip().upper().startswith("UPDATE MESSAGES"))
    with claims as captured, runtime.sessions() as db:
        repository.claim(db, worker_id="w", now=now, lease_until=now + timedelta(minutes=1), limit=250)
        db.rollback()
    statement, parameters = captured[0]
    plan = explain(runtime, statement, parameters)
    # SQLite names a sort "TEMP B-TREE"; on PostgreSQL, if the index cannot give the order a Sort node remains
    assert "ix_messages_due" in plan and "TEMP B-TREE" not in plan and "Sort" not in plan, plan
