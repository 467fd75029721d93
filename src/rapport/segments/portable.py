"""Portable SQL for the segment compiler: JSON access, dates, distance and buckets on SQLite and PostgreSQL.

The compiler builds one dialect-agnostic expression; each ``Portable`` node below renders itself for the
dialect it is compiled on (``json_type``/``json_extract``/``json_each`` on SQLite, ``jsonb_typeof``/``->``/
``jsonb_array_elements`` on PostgreSQL). The semantics are the evaluator's (``rapport.segments.evaluator``):

- a JSON value has a type (string, number, boolean, array, object, null) and a comparison only holds between
  a value and a literal of the same type; a missing key and JSON ``null`` are both "not set";
- strings compare by code point (``COLLATE "C"`` on PostgreSQL, SQLite's BINARY);
- a date is a JSON string holding an ISO date or timestamp, read as its UTC calendar date;
- an array field compares element by element (``in``/``not in``/``contains``).

Literals arrive as bound parameters in ``args``. Path keys of plain names (letters, digits, ``_``) are written
into the SQL, so that expression indexes on them apply (``rapport.segments.indexes``); other keys are bound (a
field name may contain quotes).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Date,
    Float,
    Integer,
    String,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import BIGINT, BIT, JSONB, TIMESTAMP
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.schema import Table
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean, TypeEngine

SQLITE_BUCKET_FUNCTION = "rapport_bucket"
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
_PG_DATE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_PG_DAY_ONLY = _PG_DATE + "$"
_PG_WITH_OFFSET = _PG_DATE + r"[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$"
_PG_NAIVE = _PG_DATE + r"[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$"
EARTH_RADIUS_KM = 6371.0088
#: Path keys written into the SQL text instead of bound: an expression index (``rapport.segments.indexes``)
#: only serves a query whose expression is the index's, literal path included; other keys stay bound.
_INLINE_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _constant(text: str) -> ColumnElement[Any]:
    """A fixed SQL string of the compiler's own (a JSON type name, a safe path), written inline."""
    assert "'" not in text
    return literal_column(f"'{text}'", String())


class Portable(ColumnElement[Any]):
    """One operation rendered per dialect: ``name`` picks it, ``keys`` is a JSON path, ``args`` its operands.

    Example: ``Portable("compare:>:number", (traits, bindparam(None, 200)), ("total_spend",))``.
    """

    __visit_name__ = "rapport_portable"
    inherit_cache = True
    _traverse_internals = [
        ("name", InternalTraversal.dp_string),
        ("keys", InternalTraversal.dp_string_list),
        ("args", InternalTraversal.dp_clauseelement_tuple),
    ]

    def __init__(
        self,
        name: str,
        args: Sequence[ColumnElement[Any]],
        keys: Sequence[str] = (),
        type_: TypeEngine[Any] | None = None,
    ) -> None:
        self.name = name
        self.args = tuple(args)
        self.keys = tuple(keys)
        self.type = type_ if type_ is not None else Boolean()


class PortableCondition(Portable):
    """A boolean ``Portable``, a predicate as it stands (SQLite would compare a plain boolean with ``= 1``, and
    an index on the comparison's expression would no longer apply)."""

    inherit_cache = True
    _is_implicitly_boolean = True


@compiles(Portable)
def _render(element: Portable, compiler: SQLCompiler, **kw: Any) -> str:
    build = _SQLITE if compiler.dialect.name == "sqlite" else _POSTGRES
    return f"({compiler.process(build(element), **kw)})"


def json_compare(
    doc: ColumnElement[Any], keys: Sequence[str], op: str, kind: str, values: Sequence[Any]
) -> Portable:
    """``doc[keys] op value(s)``; ``kind`` lists each literal's type (string, number, true, false, date)."""
    return PortableCondition(f"compare:{op}:{kind}", (doc, *values), keys)


def json_compare_arms(
    doc: ColumnElement[Any], keys: Sequence[str], op: str, kind: str, values: Sequence[Any]
) -> list[Portable]:
    """``json_compare`` as disjoint conditions whose OR is the comparison (``in``: one per JSON type)."""
    if op != "in":
        return [json_compare(doc, keys, op, kind, values)]
    return [
        PortableCondition(f"in_arm:{arm}:{kind}", (doc, *values), keys) for arm in in_arms(kind.split(","))
    ]


def json_is_set(doc: ColumnElement[Any], keys: Sequence[str]) -> Portable:
    """The value at ``keys`` is present and not JSON null."""
    return PortableCondition("is_set", (doc,), keys)


def json_date(doc: ColumnElement[Any], keys: Sequence[str]) -> Portable:
    """The UTC calendar date of the value at ``keys`` (NULL when it is no ISO date or timestamp)."""
    return Portable("date", (doc,), keys, Date())


def json_number(doc: ColumnElement[Any], keys: Sequence[str]) -> Portable:
    """The value at ``keys`` when it is a JSON number, else NULL."""
    return Portable("number", (doc,), keys, Float())


def json_wrap(value: ColumnElement[Any]) -> Portable:
    """A one-key JSON object ``{"v": value}`` (so a computed SQL value reads like a stored one)."""
    return Portable("wrap", (value,), (), _JSONB)


def month_day(day: ColumnElement[Any]) -> Portable:
    """``MM-DD`` of a date expression."""
    return Portable("month_day", (day,), (), String())


def distance_km(lat: ColumnElement[Any], lon: ColumnElement[Any], lat0: Any, lon0: Any) -> Portable:
    """Haversine distance in km from (lat, lon) to the bound point (lat0, lon0)."""
    return Portable("distance", (lat, lon, lat0, lon0), (), Float())


def bucket_number(seed: ColumnElement[Any], profile_id: ColumnElement[Any]) -> Portable:
    """The first 4 bytes of sha256(seed:profile_id) as an unsigned integer."""
    return Portable("bucket", (seed, profile_id), (), Integer())


def sqlite_bucket(seed: str, profile_id: int | str) -> int:
    """The SQLite function behind ``bucket_number``."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{profile_id}".encode()).digest()[:4], "big")


def prepare(connection: Connection) -> None:
    """Make ``connection`` able to run compiled segments (SQLite: register the bucket function)."""
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    if raw is not None:
        raw.create_function(SQLITE_BUCKET_FUNCTION, 2, sqlite_bucket, deterministic=True)


class Member(ColumnElement[Any]):
    """``id`` is (or, negated, is not) among the profile ids ``query`` selects (its first column).

    SQLite: ``id [NOT] IN (query)`` (one ephemeral index, probed per row). PostgreSQL: ``id IN (query)``
    (a hash semi-join), but negated ``NOT EXISTS (SELECT 1 FROM (query) g WHERE g.id = id)``, a hash anti-join:
    ``NOT IN`` over a set larger than ``work_mem`` falls back to rescanning the subquery for every profile.
    """

    __visit_name__ = "rapport_member"
    inherit_cache = True
    _is_implicitly_boolean = True  # a predicate: no "= 1" after it on SQLite, which would hide the IN
    _traverse_internals = [
        ("id", InternalTraversal.dp_clauseelement),
        ("query", InternalTraversal.dp_clauseelement),
        ("negated", InternalTraversal.dp_boolean),
    ]

    def __init__(self, id: ColumnElement[Any], query: Any, negated: bool = False) -> None:
        self.id = id
        self.query = query
        self.negated = negated
        self.type = Boolean()

    def _negate(self) -> ColumnElement[Any]:
        return Member(self.id, self.query, not self.negated)


@compiles(Member)
def _render_member(element: Member, compiler: SQLCompiler, **kw: Any) -> str:
    if not element.negated:
        return f"({compiler.process(element.id.in_(element.query), **kw)})"
    if compiler.dialect.name != "postgresql":
        return f"({compiler.process(element.id.not_in(element.query), **kw)})"
    found = element.query.subquery()
    first = next(iter(found.c))
    probe = select(literal(1)).select_from(found).where(first == element.id).exists()
    return f"(NOT {compiler.process(probe, **kw)})"


class IndexedAlias(Alias):
    """An alias that tells SQLite which index to read it through (``profiles AS p INDEXED BY ix``); PostgreSQL,
    whose planner weighs row width, gets the plain alias. Make one with ``indexed_alias``."""

    inherit_cache = True
    _traverse_internals = [*Alias._traverse_internals, ("index_name", InternalTraversal.dp_string)]
    index_name: str = ""


def indexed_alias(table: Table, name: str, index_name: str) -> IndexedAlias:
    """``table AS name``, read through ``index_name`` on SQLite (the query must allow that index)."""
    alias = IndexedAlias._construct(table, name=name)
    alias.index_name = index_name
    return alias


@compiles(IndexedAlias)
def _render_indexed_alias(element: IndexedAlias, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.visit_alias(element, **kw)
    if compiler.dialect.name == "sqlite" and kw.get("asfrom") and not kw.get("ashint"):
        text += f" INDEXED BY {element.index_name}"
    return text


# ---- one JSON value, per dialect -------------------------------------------------------------------------


class _Ref:
    """A JSON value as SQL: its type test and its readings as text, number, date."""

    def is_(self, kind: str) -> ColumnElement[bool]:
        raise NotImplementedError

    def text(self) -> ColumnElement[Any]:
        raise NotImplementedError

    def number(self) -> ColumnElement[Any]:
        raise NotImplementedError

    def boolean_is(self, value: bool) -> ColumnElement[bool]:
        raise NotImplementedError

    def date(self) -> ColumnElement[Any]:
        raise NotImplementedError

    def any_element(self, test: Callable[[_Ref], ColumnElement[bool]]) -> ColumnElement[bool]:
        raise NotImplementedError

    def collate(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        return text

    def switch(self, branches: Sequence[tuple[str, Any]], else_: Any) -> ColumnElement[Any]:
        """``CASE <json type> WHEN …``: one type lookup, one branch per kind (string, number, …)."""
        raise NotImplementedError

    def position(self, needle: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.instr(self.text(), needle)

    def typed_number(self) -> ColumnElement[Any]:
        """The value read as a number where that is safe alongside a type test (SQLite: never an error)."""
        return self.number()

    def number_test(self, op: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """``value op literal`` when the value is a number, else false or NULL."""
        return and_(self.is_("number"), _apply(op, self.number(), value))


_SQLITE_KINDS = {
    "string": ("text",),
    "number": ("integer", "real"),
    "boolean": ("true", "false"),
    "array": ("array",),
}


class _SqliteRef(_Ref):
    def __init__(
        self, kind: ColumnElement[Any], value: ColumnElement[Any], doc: Any = None, path: Any = None
    ):
        self.kind, self.value, self.doc, self.path = kind, value, doc, path

    @classmethod
    def at(cls, doc: ColumnElement[Any], keys: Sequence[str]) -> _SqliteRef:
        text = "$" + "".join('."' + key + '"' for key in keys)
        inline = all(_INLINE_KEY.match(key) for key in keys)
        path = _constant(text) if inline else literal(text, String())
        return cls(func.json_type(doc, path), func.json_extract(doc, path), doc, path)

    def is_(self, kind: str) -> ColumnElement[bool]:
        if kind == "set":  # one lookup: missing (NULL) and JSON null alike
            return func.coalesce(self.kind, "null") != "null"
        names = _SQLITE_KINDS[kind]
        if len(names) == 1:
            return self.kind == _constant(names[0])
        return self.kind.in_([_constant(name) for name in names])

    def switch(self, branches: Sequence[tuple[str, Any]], else_: Any) -> ColumnElement[Any]:
        whens = [(name, then) for kind, then in branches for name in _SQLITE_KINDS[kind]]
        return case(dict(whens), value=self.kind, else_=else_)

    def text(self) -> ColumnElement[Any]:
        return self.value

    def number(self) -> ColumnElement[Any]:
        return self.value

    def boolean_is(self, value: bool) -> ColumnElement[bool]:
        return self.kind == ("true" if value else "false")

    def date(self) -> ColumnElement[Any]:
        readable = and_(self.kind == "text", self.value.op("GLOB")(_DATE_GLOB))
        return case((readable, func.date(self.value)), else_=None)

    def any_element(self, test: Callable[[_Ref], ColumnElement[bool]]) -> ColumnElement[bool]:
        each = func.json_each(self.doc, self.path).table_valued("value", "type").alias("e")
        element = _SqliteRef(each.c.type, each.c.value)
        return select(literal(1)).select_from(each).where(test(element)).exists()


class _PgRef(_Ref):
    def __init__(self, value: ColumnElement[Any]):
        self.value = value

    @classmethod
    def at(cls, doc: ColumnElement[Any], keys: Sequence[str]) -> _PgRef:
        value = doc
        for key in keys:
            name = _constant(key) if _INLINE_KEY.match(key) else literal(key, Text())
            value = value.op("->", return_type=_JSONB)(name)
        return cls(value)

    def _text(self) -> ColumnElement[Any]:
        return self.value.op("#>>", return_type=Text())(literal_column("'{}'::text[]"))

    def switch(self, branches: Sequence[tuple[str, Any]], else_: Any) -> ColumnElement[Any]:
        return case(dict(branches), value=func.jsonb_typeof(self.value), else_=else_)

    def is_(self, kind: str) -> ColumnElement[bool]:
        typeof = func.jsonb_typeof(self.value)
        if kind == "set":
            return func.coalesce(typeof, "null") != "null"
        return typeof == _constant(kind)

    def text(self) -> ColumnElement[Any]:
        return self._text()

    def collate(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        return text.collate("C")

    def position(self, needle: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.strpos(self._text(), needle)

    def number(self) -> ColumnElement[Any]:
        return cast(self._text(), Float())

    def typed_number(self) -> ColumnElement[Any]:
        # CASE, not AND: PostgreSQL may evaluate the cast first, and it fails on a non-numeric string
        return case((self.is_("number"), self.number()), else_=None)

    def number_test(self, op: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
        return _apply(op, self.typed_number(), value)

    def boolean_is(self, value: bool) -> ColumnElement[bool]:
        return and_(self.is_("boolean"), self._text() == ("true" if value else "false"))

    def date(self) -> ColumnElement[Any]:
        text = self._text()
        string = self.is_("string")
        return case(
            (and_(string, text.op("~")(_PG_DAY_ONLY)), cast(text, Date())),
            (
                and_(string, text.op("~")(_PG_WITH_OFFSET)),
                cast(func.timezone("UTC", cast(text, _TIMESTAMPTZ)), Date()),
            ),
            (and_(string, text.op("~")(_PG_NAIVE)), cast(func.substr(text, 1, 10), Date())),
            else_=None,
        )

    def any_element(self, test: Callable[[_Ref], ColumnElement[bool]]) -> ColumnElement[bool]:
        each = func.jsonb_array_elements(self.value).table_valued("value").alias("e")
        return select(literal(1)).select_from(each).where(test(_PgRef(each.c.value))).exists()


_TIMESTAMPTZ = TIMESTAMP(timezone=True)
_JSONB = JSONB()


# ---- comparisons (the evaluator's ``compare``) ------------------------------------------------------------


def _typed_test(ref: _Ref, op: str, kind: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A same-type comparison of a scalar JSON value with one literal; NULL or false on a type mismatch.

    Numbers and strings take the shape of their expression indexes (``rapport.segments.indexes``): the type
    test and the comparison of the extracted value side by side (SQLite), the typed number (PostgreSQL).
    """
    if kind in ("true", "false"):  # booleans compare with = and != only
        equal = ref.boolean_is(kind == "true")
        return equal if op == "=" else and_(ref.is_("boolean"), not_(equal))
    if kind == "date":
        return _apply(op, ref.date(), value)
    if kind == "number":
        return ref.number_test(op, value)
    return and_(ref.is_("string"), _apply(op, ref.collate(ref.text()), value))


def _apply(op: str, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
    return {
        "=": lambda: left == right,
        "!=": lambda: left != right,
        ">": lambda: left > right,
        ">=": lambda: left >= right,
        "<": lambda: left < right,
        "<=": lambda: left <= right,
    }[op]()


def _equal(ref: _Ref, kind: str, value: ColumnElement[Any]) -> ColumnElement[bool]:
    return func.coalesce(_typed_test(ref, "=", kind, value), false())


def _compare(
    ref: _Ref, op: str, kinds: Sequence[str], values: Sequence[ColumnElement[Any]]
) -> ColumnElement[Any]:
    if op in ("in", "not in"):
        pairs = list(zip(kinds, values, strict=True))

        def overlap(element: _Ref) -> ColumnElement[bool]:
            return or_(*(_equal(element, kind, value) for kind, value in pairs))

        shared = ref.any_element(overlap)
        if op == "in":
            return or_(*(_in_arm(ref, arm, pairs, shared) for arm in in_arms(kinds)))
        return ref.switch([("array", not_(shared)), *_scalar_not_in(ref, pairs)], else_=false())
    kind, value = kinds[0], values[0]
    if op == "contains":
        inside = ref.any_element(lambda element: _equal(element, kind, value))
        branches = [("array", inside)] + ([("string", ref.position(value) > 0)] if kind == "string" else [])
        return ref.switch(branches, else_=false())
    if op == "starts with":
        text = ref.text()
        return and_(ref.is_("string"), func.substr(text, 1, func.length(value)) == value)
    return _typed_test(ref, op, kind, value)


_BASE = {"string": "string", "date": "string", "number": "number", "true": "boolean", "false": "boolean"}


def in_arms(kinds: Sequence[str]) -> list[str]:
    """The JSON types an ``in`` list can match, one arm each: arrays (element by element), then the scalars'."""
    return [
        "array",
        *(base for base in ("string", "number", "boolean") if any(_BASE[k] == base for k in kinds)),
    ]


def _in_arm(
    ref: _Ref, arm: str, pairs: list[tuple[str, ColumnElement[Any]]], shared: ColumnElement[Any] | None = None
) -> ColumnElement[Any]:
    """One arm of ``x in (…)``: the value has type ``arm`` and matches; arms are disjoint, so an index can
    serve each (the arms of ``city in ("Leeds", "York")``: a string among them, or an array holding one)."""
    if arm == "array":
        if shared is None:
            shared = ref.any_element(lambda element: or_(*(_equal(element, k, v) for k, v in pairs)))
        return and_(ref.is_("array"), shared)
    return and_(ref.is_(arm), dict(_scalar_in(ref, pairs))[arm])


def _scalar_in(ref: _Ref, pairs: list[tuple[str, ColumnElement[Any]]]) -> list[tuple[str, Any]]:
    """Branches by JSON type for ``x in (…)`` on a scalar: equal to one literal of the same type."""
    branches: list[tuple[str, Any]] = []
    for base in ("string", "number", "boolean"):
        group = [(kind, value) for kind, value in pairs if _BASE[kind] == base]
        if not group:
            continue
        tests: list[ColumnElement[Any]] = []
        strings = [value for kind, value in group if kind == "string"]
        if strings:
            tests.append(ref.collate(ref.text()).in_(strings))
        dates = [value for kind, value in group if kind == "date"]
        if dates:
            tests.append(func.coalesce(ref.date().in_(dates), false()))
        numbers = [value for kind, value in group if kind == "number"]
        if numbers:
            tests.append(ref.typed_number().in_(numbers))
        for kind in {kind for kind, _ in group if base == "boolean"}:
            tests.append(ref.boolean_is(kind == "true"))
        branches.append((base, or_(*tests)))
    return branches


def _scalar_not_in(ref: _Ref, pairs: list[tuple[str, ColumnElement[Any]]]) -> list[tuple[str, Any]]:
    """Branches for ``x not in (…)`` on a scalar: ``!=`` each literal, so of every literal's type."""
    bases = {_BASE[kind] for kind, _ in pairs}
    if len(bases) != 1:
        return []  # no scalar has two types at once
    (base,) = bases
    tests: list[ColumnElement[Any]] = []
    strings = [value for kind, value in pairs if kind == "string"]
    if strings:
        tests.append(ref.text().not_in(strings))
    dates = [value for kind, value in pairs if kind == "date"]
    if dates:
        day = ref.date()
        tests.append(and_(day.is_not(None), day.not_in(dates)))
    numbers = [value for kind, value in pairs if kind == "number"]
    if numbers:
        tests.append(ref.number().not_in(numbers))
    for kind in {kind for kind, _ in pairs if base == "boolean"}:
        tests.append(not_(ref.boolean_is(kind == "true")))
    return [(base, and_(*tests))]


def _build(
    element: Portable, ref_at: Callable[[ColumnElement[Any], Sequence[str]], _Ref]
) -> ColumnElement[Any]:
    name, args, keys = element.name, element.args, element.keys
    if name.startswith("compare:"):
        _, op, kinds = name.split(":", 2)
        return _compare(ref_at(args[0], keys), op, kinds.split(","), args[1:])
    if name.startswith("in_arm:"):
        _, arm, kinds = name.split(":", 2)
        pairs = list(zip(kinds.split(","), args[1:], strict=True))
        return _in_arm(ref_at(args[0], keys), arm, pairs)
    if name == "is_set":
        return ref_at(args[0], keys).is_("set")
    if name == "date":
        return ref_at(args[0], keys).date()
    if name == "number":
        ref = ref_at(args[0], keys)
        return case((ref.is_("number"), ref.number()), else_=None)
    raise ValueError(f"unknown portable operation {name!r}")


def _distance(lat: ColumnElement[Any], lon: ColumnElement[Any], lat0: Any, lon0: Any, least: Any) -> Any:
    # the evaluator's formula, step for step, so both sides round alike
    phi1, phi2 = func.radians(lat), func.radians(lat0)
    dphi = func.radians(lat0) - func.radians(lat)
    dlambda = func.radians(lon0) - func.radians(lon)
    h = func.power(func.sin(dphi / 2), 2) + func.cos(phi1) * func.cos(phi2) * func.power(
        func.sin(dlambda / 2), 2
    )
    return 2 * EARTH_RADIUS_KM * func.asin(least(1.0, func.sqrt(h)))


def _pg_least(bound: float, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """``min(bound, value)`` that stays NULL for NULL, as SQLite's ``min`` does: PostgreSQL's ``least``
    skips NULLs, which gave a profile without a location the distance ``π × R`` (~20,015 km)."""
    return case((value > bound, bound), else_=value)


def _SQLITE(element: Portable) -> ColumnElement[Any]:
    if element.name == "month_day":
        return func.strftime("%m-%d", element.args[0])
    if element.name == "wrap":
        return func.json_object("v", element.args[0])
    if element.name == "distance":
        lat, lon, lat0, lon0 = element.args
        return _distance(lat, lon, lat0, lon0, func.min)
    if element.name == "bucket":
        return getattr(func, SQLITE_BUCKET_FUNCTION)(element.args[0], element.args[1])
    return _build(element, _SqliteRef.at)


def _POSTGRES(element: Portable) -> ColumnElement[Any]:
    if element.name == "month_day":
        return func.to_char(element.args[0], "MM-DD")
    if element.name == "wrap":
        return func.jsonb_build_object("v", element.args[0])
    if element.name == "distance":
        lat, lon, lat0, lon0 = element.args
        return _distance(lat, lon, lat0, lon0, _pg_least)
    if element.name == "bucket":
        seed, profile_id = element.args
        text = seed.concat(":").concat(cast(profile_id, Text()))
        digest = func.encode(func.sha256(func.convert_to(text, "UTF8")), "hex")
        bits = literal_bits(func.substr(digest, 1, 8))
        return bits
    return _build(element, _PgRef.at)


def literal_bits(hex8: ColumnElement[Any]) -> ColumnElement[Any]:
    """PostgreSQL: eight hex digits as an unsigned 32-bit integer (bigint)."""
    return cast(cast(literal("x", Text()).concat(hex8), BIT(32)), BIGINT())
