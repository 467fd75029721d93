"""Query shapes that keep SQLite's planner on the right index without statistics.

SQLite keeps no statistics unless ANALYZE runs (Rapport does not run it), and without them it takes an
equality on an indexed column for a selective filter. ``workspace_id = ?`` is the opposite: one workspace may
hold every row. A query keyed by profile (``workspace_id = ? AND profile_id IN (...)``) was then planned as a
scan of the whole workspace through an index that starts with ``workspace_id`` (measured: importing into a
workspace of a million customers slowed to a thousand events a second, the identities of every batch's
profiles being counted by walking all three million identities). :func:`same_workspace` writes the tenant
filter so that no index is chosen for it (SQLite's documented idiom: an expression over a column disqualifies
the term from index use); the query is then planned on its profile index. PostgreSQL keeps statistics and
plans these queries on the profile index either way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement


def same_workspace(column: Any, workspace_id: int | ColumnElement[Any]) -> ColumnElement[bool]:
    """``column = workspace_id`` as a filter only, never an index choice (for queries keyed by profile)."""
    return (column + 0) == workspace_id
