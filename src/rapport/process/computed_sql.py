"""Computed traits as SQL: one correlated scalar subquery per trait, for the segment compiler.

``computed_expression(spec, profile_id_col, now)`` is pure (no session): it returns a SQLAlchemy Core scalar
expression evaluated per row of an outer query over profiles, on SQLite and PostgreSQL alike. Every literal
is a bound parameter. It implements the same rules as :mod:`rapport.process.computed` (only JSON numbers
count for sum/avg/min/max; ``!=`` holds for a missing value; ties of ``most_frequent`` go to the smallest
value in code-point order), with one difference of type: value aggregations (first/last value, most
frequent) return the value's text form, timestamps a timestamp and ``days_since_*`` an integer.

Example::

    expr = computed_expression(spec, Profile.id, now, purchase=PurchaseSettings())
    stmt = select(Profile.id).where(Profile.workspace_id == ws, expr >= 3)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, String, and_, bindparam, func, null, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from rapport.db.base import UTCDateTime
from rapport.models import Event
from rapport.process.computed import (
    Condition,
    PurchaseSettings,
    TraitSpec,
    as_text,
    is_number,
    path_parts,
    window_start,
)

#: The outer query's profile id: a Core column or an ORM attribute such as ``Profile.id``.
ProfileIdColumn = ColumnElement[Any] | InstrumentedAttribute[Any]


class json_text(FunctionElement[str]):
    """The text form of a JSON value at a path (NULL for a missing value; ``true``/``false`` for booleans)."""

    type = String()
    inherit_cache = True


class json_number(FunctionElement[float]):
    """A JSON value at a path when it is a number, else NULL (a string never becomes a number)."""

    type = Float()
    inherit_cache = True


class text_position(FunctionElement[int]):
    """1-based position of the second string in the first, 0 when absent (case-sensitive)."""

    type = Integer()
    inherit_cache = True


class days_between(FunctionElement[int]):
    """Whole days from the second timestamp to the first (floor)."""

    type = Integer()
    inherit_cache = True


class binary_order(FunctionElement[str]):
    """A string ordered by code point (PostgreSQL ``COLLATE "C"``; SQLite's default is already binary)."""

    type = String()
    inherit_cache = True


def _args(element: FunctionElement[Any]) -> list[Any]:
    return list(element.clauses)


def _sqlite_path(compiler: SQLCompiler, element: FunctionElement[Any]) -> tuple[str, str]:
    col, path = _args(element)
    return compiler.process(col), compiler.process(path)


@compiles(json_text, "sqlite")
def _json_text_sqlite(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    col, path = _sqlite_path(compiler, element)
    return (
        f"(CASE json_type({col}, {path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
        f"WHEN 'null' THEN NULL ELSE CAST(json_extract({col}, {path}) AS TEXT) END)"
    )


@compiles(json_number, "sqlite")
def _json_number_sqlite(element: json_number, compiler: SQLCompiler, **kw: Any) -> str:
    col, path = _sqlite_path(compiler, element)
    return f"(CASE WHEN json_type({col}, {path}) IN ('integer', 'real') THEN json_extract({col}, {path}) END)"


def _pg_path(compiler: SQLCompiler, element: FunctionElement[Any]) -> tuple[str, str]:
    col, path = _args(element)
    return compiler.process(col), compiler.process(path)


@compiles(json_text, "postgresql")
def _json_text_pg(element: json_text, compiler: SQLCompiler, **kw: Any) -> str:
    col, path = _pg_path(compiler, element)
    return f"({col} #>> CAST({path} AS TEXT[]))"


@compiles(json_number, "postgresql")
def _json_number_pg(element: json_number, compiler: SQLCompiler, **kw: Any) -> str:
    col, path = _pg_path(compiler, element)
    return (
        f"(CASE WHEN jsonb_typeof({col} #> CAST({path} AS TEXT[])) = 'number' "
        f"THEN CAST({col} #>> CAST({path} AS TEXT[]) AS DOUBLE PRECISION) END)"
    )


@compiles(text_position, "sqlite")
def _position_sqlite(element: text_position, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(x) for x in _args(element))
    return f"instr({a}, {b})"


@compiles(text_position, "postgresql")
def _position_pg(element: text_position, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(x) for x in _args(element))
    return f"strpos({a}, {b})"


@compiles(days_between, "sqlite")
def _days_sqlite(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(x) for x in _args(element))
    # No floor(): SQLAlchemy registers a Python floor on SQLite connections that fails on NULL. The inner
    # SELECT evaluates the difference once; the 1e-9 day (86 µs) absorbs julianday's float error.
    return (
        f"(SELECT CAST(d AS INTEGER) - (CAST(d AS INTEGER) > d) FROM "  # noqa: S608 (compiled SQL, bound values)
        f"(SELECT julianday({a}) - julianday({b}) + 1e-9 AS d))"
    )


@compiles(days_between, "postgresql")
def _days_pg(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    a, b = (compiler.process(x) for x in _args(element))
    return f"CAST(floor(extract(epoch from ({a} - {b})) / 86400) AS INTEGER)"


@compiles(binary_order, "sqlite")
def _order_sqlite(element: binary_order, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(_args(element)[0]))


@compiles(binary_order, "postgresql")
def _order_pg(element: binary_order, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(_args(element)[0])} COLLATE "C")'


def _path_param(where: str, keys: tuple[str, ...], dialect_neutral: bool = True) -> Any:
    """Bind the path once in both spellings: SQLite reads ``$."a"."b"``; PostgreSQL reads ``{a,b}``."""
    return _DualPath(where, keys)


class _DualPath(FunctionElement[str]):
    """A JSON path literal bound as a parameter in the dialect's own syntax."""

    type = String()
    inherit_cache = False

    def __init__(self, where: str, keys: tuple[str, ...]) -> None:
        self.keys = keys
        super().__init__()


@compiles(_DualPath, "sqlite")
def _dual_sqlite(element: _DualPath, compiler: SQLCompiler, **kw: Any) -> str:
    quoted = "".join('."' + k.replace('"', '\\"') + '"' for k in element.keys)
    return str(compiler.process(bindparam(None, "$" + quoted, type_=String()), **kw))


@compiles(_DualPath, "postgresql")
def _dual_pg(element: _DualPath, compiler: SQLCompiler, **kw: Any) -> str:
    quoted = ",".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in element.keys)
    return str(compiler.process(bindparam(None, "{" + quoted + "}", type_=String()), **kw))


def text_at(path: str) -> ColumnElement[Any]:
    """The text form of an event's property (or column) at ``path``."""
    where, keys = path_parts(path)
    if where == "column":
        return getattr(Event, keys[0])
    col = Event.context if where == "context" else Event.properties
    return json_text(col, _path_param(where, keys))


def number_at(path: str) -> ColumnElement[Any]:
    """An event's property at ``path`` when it is a JSON number, else NULL."""
    where, keys = path_parts(path)
    if where == "column":
        return null().cast(Float)
    col = Event.context if where == "context" else Event.properties
    return json_number(col, _path_param(where, keys))


def condition_sql(cond: Condition) -> ColumnElement[bool]:
    """One condition as SQL, with the rules of :func:`rapport.process.computed.condition_holds`."""
    text = text_at(cond.property)
    want = cond.value
    if cond.op == "!=":
        if is_number(want):
            num = number_at(cond.property)
            return or_(num.is_(None), num != float(want))
        return or_(text.is_(None), text != as_text(want))
    if cond.op == "in":
        return text.in_([as_text(v) for v in want])
    if cond.op == "contains":
        return and_(text.is_not(None), text_position(text, str(want)) > 0)
    if is_number(want):
        left: ColumnElement[Any] = number_at(cond.property)
        right: Any = float(want)
    else:
        left, right = binary_order(text), as_text(want)
    ops = {"=": left == right, ">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}
    return ops[cond.op]


def _filters(
    spec: TraitSpec, profile_id_col: ProfileIdColumn, now: datetime, purchase: PurchaseSettings
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Event.profile_id == profile_id_col]
    if spec.workspace_id:
        where.append(Event.workspace_id == spec.workspace_id)
    names = spec.event_names(purchase)
    if names is not None:
        where.append(Event.event.in_(list(names)) if len(names) > 1 else Event.event == names[0])
    if spec.window_days is not None:
        where.append(
            Event.timestamp >= bindparam(None, window_start(now, spec.window_days), type_=UTCDateTime())
        )
    where.extend(condition_sql(c) for c in spec.conditions)
    return where


def computed_expression(
    spec: TraitSpec,
    profile_id_col: ProfileIdColumn,
    now: datetime,
    *,
    purchase: PurchaseSettings | None = None,
) -> ColumnElement[Any]:
    """Return a scalar SQL expression with the trait's value for the profile id in ``profile_id_col``."""
    purchase = purchase or PurchaseSettings()
    where = _filters(spec, profile_id_col, now, purchase)
    agg = spec.aggregation
    path = spec.property_path(purchase)
    now_param = bindparam(None, now, type_=UTCDateTime())
    if agg == "count":
        return select(func.count()).where(*where).scalar_subquery()
    if agg in ("sum", "avg", "min", "max"):
        assert path is not None
        num = number_at(path)
        value: ColumnElement[Any] = (
            func.coalesce(func.sum(num), 0)
            if agg == "sum"
            else func.avg(num)
            if agg == "avg"
            else func.min(num)
            if agg == "min"
            else func.max(num)
        )
        return select(value).where(*where).scalar_subquery()
    if agg in ("first_at", "days_since_first"):
        first = select(func.min(Event.timestamp)).where(*where).scalar_subquery()
        return first if agg == "first_at" else days_between(now_param, first)
    if agg in ("last_at", "days_since_last"):
        last = select(func.max(Event.timestamp)).where(*where).scalar_subquery()
        return last if agg == "last_at" else days_between(now_param, last)
    assert path is not None
    text = text_at(path)
    if agg in ("first_value", "last_value"):
        order = (
            (Event.timestamp, Event.id) if agg == "first_value" else (Event.timestamp.desc(), Event.id.desc())
        )
        return select(text).where(*where, text.is_not(None)).order_by(*order).limit(1).scalar_subquery()
    if agg == "most_frequent":
        # Group a derived table by its output column: PostgreSQL cannot match the bound path of a repeated
        # JSON expression in GROUP BY; the derived table is correlated to the outer profile explicitly.
        values = select(text.label("v")).where(*where, text.is_not(None)).correlate_except(Event).subquery()
        return (
            select(values.c.v)
            .group_by(values.c.v)
            .order_by(func.count().desc(), binary_order(values.c.v))
            .limit(1)
            .scalar_subquery()
        )
    if agg == "distinct_count":
        return select(func.count(func.distinct(text))).where(*where).scalar_subquery()
    raise ValueError(agg)
