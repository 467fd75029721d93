"""Indexed fields (``rapport.segments.indexes``): the id-set form answers like the evaluator, the migration made
the indexes the registry names, and the compiled comparisons are written so that the database uses them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, func, inspect, select, text

from rapport.models import Profile
from rapport.runtime import Runtime
from rapport.segments import EventFact, Node, ProfileFacts, evaluate, indexes, parse, portable, repository
from rapport.segments.ast import Compare, Not
from rapport.segments.catalog import Catalog
from rapport.segments.compiler import Scope, compile_segment
from tests.segments import sqldata
from tests.segments.typed import NOW
from tests.support.tenants import make_tenant

CATALOG = Catalog(
    traits={"city": "string", "age": "number"},
    computed={"total_spend": "number", "total_orders": "number"},
    events={"product_viewed", "order_completed"},
)
# Values of every JSON type, arrays included: the ``in`` arms must keep them apart as the evaluator does.
_city = st.one_of(
    st.sampled_from(["Leeds", "York", "Hull", "leeds", "", "10"]),
    st.lists(st.sampled_from(["Leeds", "York", "Hull", 7]), max_size=3),
    st.sampled_from([None, 7, 10.0, True, False, {"name": "Leeds"}]),
)
_spend = st.one_of(
    st.sampled_from([0, 1, 200, 200.5, 500, 501, -3]),
    st.sampled_from([None, "250", "oops", True, [250], {"v": 1}]),
)
_traits = st.fixed_dictionaries({}, optional={"city": _city, "total_spend": _spend, "total_orders": _spend})
_strings = st.sampled_from(["Leeds", "York", "Hull", "", "10"])
_numbers = st.sampled_from([0, 1, 200, 250.5, 500, -3])
_ops = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])


@st.composite
def _conditions(draw: st.DrawFn) -> Node:
    field = draw(st.sampled_from(["city", "total_spend", "total_orders"]))
    values: st.SearchStrategy[Any] = _strings if field == "city" else _numbers
    node: Node
    if draw(st.booleans()):
        node = Compare(field, "in", tuple(draw(st.lists(values, min_size=1, max_size=3))))
    else:
        op: Any = draw(_ops)
        node = Compare(field, op, draw(values))
    return Not(node) if draw(st.booleans()) else node


def _scope(workspace_id: int, *, per_profile: bool) -> Scope:
    return Scope(workspace_id=workspace_id, now=NOW, catalog=CATALOG, per_profile=per_profile)


def test_indexed_comparisons_agree_with_the_evaluator(runtime: Runtime) -> None:
    workspace_id = make_tenant(runtime, "acme").workspace_id
    counter = iter(range(10**9))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(_traits, min_size=1, max_size=6), st.lists(_conditions(), min_size=1, max_size=4))
    def check(traits: list[dict[str, Any]], trees: list[Node]) -> None:
        facts = [ProfileFacts("x", t) for t in traits]
        with runtime.engine.connect() as conn:
            trans = conn.begin()
            try:
                stored = sqldata.load(
                    conn,
                    workspace_id,
                    facts,
                    catalog=CATALOG,
                    segment_ids={},
                    first_id=10 + next(counter) * 10,
                )
                ids = [int(f.profile_id) for f in stored]
                for tree in trees:
                    expected = {int(f.profile_id) for f in stored if evaluate(tree, f, NOW, catalog=CATALOG)}
                    sets = sqldata.matching_ids(conn, tree, _scope(workspace_id, per_profile=False), ids)
                    assert sets == expected, (tree, traits)
                    probed = sqldata.matching_ids(conn, tree, _scope(workspace_id, per_profile=True), ids)
                    assert probed == expected, ("per profile", tree, traits)
            finally:
                trans.rollback()

    check()


def test_the_reference_segment_on_an_array_city(runtime: Runtime) -> None:
    workspace_id = make_tenant(runtime, "acme").workspace_id
    tree = parse('total_spend > 200 and city in ("Leeds", "York")', catalog=CATALOG)
    people: list[dict[str, Any]] = [
        {"city": ["Hull", "York"], "total_spend": 201},
        {"city": "Leeds", "total_spend": 250.5},
        {"city": "Leeds", "total_spend": "250"},
        {"city": "Hull", "total_spend": 900},
        {"city": ["Hull"], "total_spend": 900},
    ]
    with runtime.engine.connect() as conn:
        stored = sqldata.load(
            conn,
            workspace_id,
            [ProfileFacts("x", t) for t in people],
            catalog=CATALOG,
            segment_ids={},
            first_id=1,
        )
        got = sqldata.matching_ids(conn, tree, _scope(workspace_id, per_profile=False))
        conn.rollback()
    assert got == {int(stored[0].profile_id), int(stored[1].profile_id)}


def _index_names(conn: Connection, table: str) -> set[str]:
    if conn.dialect.name == "sqlite":
        rows = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"), {"t": table}
        )
        return set(rows.scalars())
    return {ix["name"] for ix in inspect(conn).get_indexes(table) if ix["name"]}


def test_every_indexed_field_has_its_index(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        on_profiles = _index_names(conn, "profiles")
        on_events = _index_names(conn, "events")
    for column, key in indexes.PROFILE_FIELDS:
        assert f"ix_profiles_segment_{key}" in on_profiles, (column, key)
    for key in indexes.EVENT_PROPERTIES:
        assert f"ix_events_segment_{key}" in on_events


def _plan(conn: Connection, tree: Node, workspace_id: int) -> str:
    """The database's plan for counting ``tree`` (PostgreSQL with sequential scans off: can it use an index?)."""
    portable.prepare(conn)
    p = Profile.__table__.alias("p")
    condition = compile_segment(tree, scope=_scope(workspace_id, per_profile=False), profiles=p)
    query = select(func.count()).select_from(p).where(p.c.workspace_id == workspace_id, condition)
    sql = str(query.compile(conn.engine, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        return "\n".join(str(row[3]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    return "\n".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql))


def test_the_benchmark_conditions_read_their_indexes(runtime: Runtime) -> None:
    workspace_id = make_tenant(runtime, "acme").workspace_id
    cases = {
        "total_spend > 500": "ix_profiles_segment_total_spend",
        "total_orders <= 2": "ix_profiles_segment_total_orders",
        'city in ("Leeds", "York")': "ix_profiles_segment_city",
        'city = "Leeds"': "ix_profiles_segment_city",
        'did "product_viewed" where category = "Footwear" in last 30 days': "ix_events_segment_category",
    }
    with runtime.engine.connect() as conn:
        sqldata.load(
            conn,
            workspace_id,
            [
                ProfileFacts(
                    "x",
                    {"city": "Leeds", "total_spend": 600, "total_orders": 1},
                    events=[EventFact("product_viewed", NOW - timedelta(days=1), {"category": "Footwear"})],
                )
            ],
            catalog=CATALOG,
            segment_ids={},
            first_id=1,
        )
        for source, index in cases.items():
            plan = _plan(conn, parse(source, catalog=CATALOG), workspace_id)
            assert index in plan, (source, plan)
        conn.rollback()


def test_the_event_category_index_holds_linked_events_only(runtime: Runtime) -> None:
    # Migration 0012: ingest writes events without a profile; they enter the index once the processor links
    # them (one index write per event instead of two, and none on ingest's hot INSERT).
    with runtime.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            definition = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'ix_events_segment_category'")
            ).scalar_one()
        else:
            definition = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_events_segment_category'")
            ).scalar_one()
    where = definition[definition.upper().index(" WHERE ") :]
    assert "profile_id IS NOT NULL" in where, definition


def _two_profiles(runtime: Runtime) -> tuple[int, Node]:
    workspace_id = make_tenant(runtime, "acme").workspace_id
    facts = [ProfileFacts("x", {"total_spend": 600}), ProfileFacts("y", {"total_spend": 10})]
    with runtime.engine.begin() as conn:
        sqldata.load(conn, workspace_id, facts, catalog=CATALOG, segment_ids={}, first_id=1)
    return workspace_id, parse("total_spend > 500", catalog=CATALOG)


def test_sqlite_counts_read_the_live_ids_index(runtime: Runtime) -> None:
    if not runtime.is_sqlite:
        pytest.skip("SQLite is told which index to read; PostgreSQL chooses")
    workspace_id, tree = _two_profiles(runtime)
    with runtime.read_sessions() as db:
        scope = _scope(workspace_id, per_profile=False)
        query = repository.count_and_sample_query(db, tree, scope)
        sql = str(query.compile(runtime.engine, compile_kwargs={"literal_binds": True}))
        plan = [str(row[3]) for row in db.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
        assert any("p USING INDEX ix_profiles_live" in step for step in plan), plan
        assert repository.count_and_sample(db, tree, scope)[0] == 1


def test_sqlite_counts_without_the_live_ids_index(runtime: Runtime) -> None:
    # a database migrated while 0007 was an empty placeholder has no ix_profiles_live: still counts, plainly
    if not runtime.is_sqlite:
        pytest.skip("only SQLite names the index")
    workspace_id, tree = _two_profiles(runtime)
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_profiles_live")
    with runtime.read_sessions() as db:
        count, sample = repository.count_and_sample(db, tree, _scope(workspace_id, per_profile=False))
    assert (count, [row.id for row in sample]) == (1, [1])
