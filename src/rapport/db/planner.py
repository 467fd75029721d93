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

from sqlalchemy import Boolean, ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal


def same_workspace(column: Any, workspace_id: int | ColumnElement[Any]) -> ColumnElement[bool]:
    """``column = workspace_id`` as a filter only, never an index choice (for queries keyed by profile)."""
    return (column + 0) == workspace_id


class OneOf(ColumnElement[bool]):
    """``column IN (:name)`` for a list bound at execution, as each database runs it best.

    SQLite: an expanding IN (one ``?`` per value). PostgreSQL: ``column = ANY(:name)`` with the list as
    one array parameter, so the statement's text is the same whatever the list's length: psycopg parses
    and PostgreSQL plans it once per connection (prepared), where an expanding IN is a new statement for
    every length, rendered in Python with one parameter per value (measured on a real-time batch of 100
    events: about a tenth of the batch).
    """

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison: no ``= 1`` where booleans are integers (SQLite)
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.name = name


def one_of(column: Any, name: str) -> ColumnElement[bool]:
    """``column`` is one of the list bound as ``name`` at execution (see :class:`OneOf`)."""
    return OneOf(column, name)


@compiles(OneOf)
def _one_of_default(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw))


@compiles(OneOf, "postgresql")
def _one_of_postgresql(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    array = bindparam(element.name, type_=ARRAY(element.column.type))
    return str(compiler.process(element.column == any_(array), **kw))
