"""Capture the SQL statements a block of code sends (to prove what a path does, or no longer does), and
explain one on the real database (which index would it read?)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from rapport.runtime import Runtime


@contextmanager
def _listening(runtime: Runtime, record: Callable[[str, Any], None]) -> Iterator[None]:
    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        record(statement, parameters)

    event.listen(runtime.engine, "before_cursor_execute", capture)
    try:
        yield
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)


@contextmanager
def statements(runtime: Runtime, wanted: Callable[[str], bool] = lambda _s: True) -> Iterator[list[str]]:
    """Yield a list that collects, while the block runs, every statement of ``runtime``'s engine that
    ``wanted`` accepts (the SQL text as sent to the driver)."""
    seen: list[str] = []
    with _listening(
        runtime, lambda statement, _parameters: seen.append(statement) if wanted(statement) else None
    ):
        yield seen


@contextmanager
def calls(
    runtime: Runtime, wanted: Callable[[str], bool] = lambda _s: True
) -> Iterator[list[tuple[str, Any]]]:
    """As :func:`statements`, with each statement's parameters (to explain it afterwards)."""
    seen: list[tuple[str, Any]] = []
    with _listening(
        runtime,
        lambda statement, parameters: seen.append((statement, parameters)) if wanted(statement) else None,
    ):
        yield seen


def explain(runtime: Runtime, statement: str, parameters: Any) -> str:
    """The database's plan for a captured statement, its lines joined by " / ": SQLite's ``EXPLAIN QUERY
    PLAN``; PostgreSQL's ``EXPLAIN`` with sequential scans off (with no rows the planner may prefer any
    plan: this asks whether an index can serve the statement)."""
    raw: Any = runtime.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if runtime.engine.dialect.name == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = " / ".join(str(row[-1]) for row in cursor.fetchall())
        else:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {statement}", parameters)
            plan = " / ".join(str(row[0]) for row in cursor.fetchall())
        raw.rollback()
        return plan
    finally:
        raw.close()
