"""Capture the SQL statements a block of code sends (to prove what a path does, or no longer does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from rapport.runtime import Runtime


@contextmanager
def statements(runtime: Runtime, wanted: Callable[[str], bool] = lambda _s: True) -> Iterator[list[str]]:
    """Yield a list that collects, while the block runs, every statement of ``runtime``'s engine that
    ``wanted`` accepts (the SQL text as sent to the driver)."""
    seen: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if wanted(statement):
            seen.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)
