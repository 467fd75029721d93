"""Cursor-free limit/offset pagination parameters shared by list endpoints."""

from __future__ import annotations

from dataclasses import dataclass

#: The furthest a list may be paged (rows skipped): past it, no store has the rows, and SQLite cannot bind
#: an offset beyond 64 bits at all.
MAX_OFFSET = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Page:
    """A requested page: ``limit`` rows after skipping ``offset``."""

    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        if not 0 <= self.offset <= MAX_OFFSET:
            raise ValueError(f"offset must be between 0 and {MAX_OFFSET:,}")
