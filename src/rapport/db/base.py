"""Declarative base with a constraint naming convention and portable column types."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from rapport.kit.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Integer primary key that is BIGINT on PostgreSQL and the rowid alias on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: JSON that is JSONB on PostgreSQL.
Json = JSON().with_variant(JSONB(), "postgresql")


def sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy stores for a UTCDateTime value on SQLite (UTC, no zone; a naive time is UTC), for
    statements that bind driver-ready values."""
    v = value.astimezone(UTC) if value.tzinfo is not None else value
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"


def pg_time(value: datetime) -> str:
    """A UTCDateTime value as ISO text with its offset (a naive time is UTC), for PostgreSQL statements that
    carry values inside one JSON document."""
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


@functools.cache  # pure in (table, column); compiling a type builds a dialect (~6 µs a call)
def pg_cast(table: Table, column: str) -> str:
    """The PostgreSQL type to cast a value of ``table.column`` to when it comes out of a JSON document of
    rows (``(r->>i)::<type>``): ``text`` for strings, not ``VARCHAR(n)``: an explicit cast to ``VARCHAR(n)``
    cuts a longer value silently, where the assignment to the column refuses it, as a plain INSERT or
    UPDATE would."""
    kind = table.c[column].type
    if isinstance(kind, String):
        return "text"
    return str(kind.compile(dialect=postgresql.dialect()))


def column_length(column: Any) -> int:
    """The declared length of a ``String(n)`` column (what PostgreSQL enforces)."""
    length = column.type.length if isinstance(column.type, String) else None
    if length is None:
        raise ValueError(f"{column} has no declared length")
    return int(length)


@functools.cache
def pg_pick(table: Table, column: str, index: int) -> str:
    """The value of ``table.column`` at ``index`` of a jsonb row ``r`` (one element of a JSON document of
    rows read with ``jsonb_array_elements``): JSON columns as jsonb, the others cast by :func:`pg_cast`."""
    if isinstance(table.c[column].type, JSON):
        return f"(r->{index})::jsonb"
    return f"(r->>{index})::{pg_cast(table, column)}"


def pg_insert_from_json(table: Table, columns: Sequence[str], tail: str = "") -> str:
    """PostgreSQL: ``INSERT INTO table (columns) SELECT … <tail>`` over ONE JSON array of rows bound as
    ``%s`` (each row a JSON array of its values in ``columns`` order, read by :func:`pg_pick`). The rows are
    inserted in the array's order (``WITH ORDINALITY … ORDER BY``), so generated ids follow it; ``tail``
    (e.g. ``ON CONFLICT … DO NOTHING``, ``RETURNING …``) is appended. The statement text does not depend
    on the row count: it is parsed and prepared once (and built once per process: ~150 µs for 29 columns)."""
    return _pg_insert_from_json(table, tuple(columns), tail)


@functools.cache
def _pg_insert_from_json(table: Table, columns: tuple[str, ...], tail: str) -> str:
    names = ", ".join(f'"{name}"' for name in columns)
    picks = ", ".join(pg_pick(table, name, i) for i, name in enumerate(columns))
    return (
        f"INSERT INTO {table.name} ({names}) SELECT {picks} "  # noqa: S608 (names from the table, values bound)
        "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS x(r, n) ORDER BY n"
        + (f" {tail}" if tail else "")
    )


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back as an aware UTC datetime (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every ORM table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class IdMixin:
    """An autoincrementing integer primary key."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class CreatedAtMixin:
    """A UTC creation timestamp."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class WorkspaceScoped:
    """Every tenant-owned row carries its workspace; queries must filter on it (R20)."""

    @declared_attr
    def workspace_id(cls) -> Mapped[int]:
        return mapped_column(
            BigId, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True
        )
