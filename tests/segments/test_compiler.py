"""The compiled SQL answers like the evaluator, on SQLite and PostgreSQL, for random segments and profiles."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapport.models import Profile
from rapport.runtime import Runtime
from rapport.segments import Node, ProfileFacts, evaluate, parse
from rapport.segments.ast import BucketOp, Compare, RandomBucket
from rapport.segments.compiler import Scope, compile_segment
from tests.segments import sqldata
from tests.segments.typed import CATALOG, NOW, profiles, typed_segments
from tests.support.tenants import make_tenant


def _scope(workspace_id: int, segment_ids: dict[str, int], seed: str = "") -> Scope:
    return Scope(
        workspace_id=workspace_id,
        now=NOW,
        catalog=CATALOG,
        seed=seed,
        segment_ids=segment_ids,
        campaign_ids=sqldata.CAMPAIGN_IDS,
    )


def _agree(runtime: Runtime, examples: int) -> None:
    workspace_id = make_tenant(runtime, "acme").workspace_id
    with runtime.engine.begin() as conn:
        segment_ids = sqldata.make_segments(conn, workspace_id, ["Staff", "VIP"])
    scope = _scope(workspace_id, segment_ids)
    probe = replace(scope, per_profile=True)
    counter = iter(range(10**9))

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(profiles(), min_size=1, max_size=5), st.lists(typed_segments, min_size=1, max_size=4))
    def check(facts: list[ProfileFacts], trees: list[Node]) -> None:
        first = 1_000 + next(counter) * 10
        with runtime.engine.connect() as conn:
            trans = conn.begin()
            try:
                stored = sqldata.load(
                    conn, workspace_id, facts, catalog=CATALOG, segment_ids=segment_ids, first_id=first
                )
                for tree in trees:
                    expected = {int(f.profile_id) for f in stored if evaluate(tree, f, NOW, catalog=CATALOG)}
                    got = sqldata.matching_ids(conn, tree, scope)
                    assert got == expected, (tree, stored)
                    probed = sqldata.matching_ids(conn, tree, probe, [int(f.profile_id) for f in stored])
                    assert probed == expected, ("per profile", tree, stored)
            finally:
                trans.rollback()

    check()


def test_compiled_segments_agree_with_the_evaluator(runtime: Runtime) -> None:
    _agree(runtime, 40)


@pytest.mark.slow
def test_compiled_segments_agree_with_the_evaluator_at_length(runtime: Runtime) -> None:
    _agree(runtime, 600)


def test_every_literal_is_a_bound_parameter(runtime: Runtime) -> None:
    tree = parse(
        'city in ("Leeds", "O\'Brien") and total_spend > 200 and did "page_viewed" where url contains "/sale" '
        'and random bucket < 10% seed "s1"',
        catalog=CATALOG,
    )
    p = Profile.__table__.alias("p")
    condition = compile_segment(tree, scope=_scope(1, {}), profiles=p)
    sql = str(condition.compile(runtime.engine))
    for literal in ("Leeds", "O'Brien", "200", "/sale", "s1", "page_viewed"):
        assert literal not in sql


def test_reference_segment_on_hand_made_data(runtime: Runtime) -> None:
    from rapport.segments import EventFact, MessageFact

    workspace_id = make_tenant(runtime, "acme").workspace_id
    text = (
        "purchased at least 3 times in last 90 days and total_spend > 200 and email.opened in last 30 days and "
        'city in ("Leeds", "York") and not in segment "Staff"'
    )
    tree = parse(text, catalog=CATALOG)
    recent = [EventFact("order_completed", NOW - timedelta(days=d)) for d in (1, 20, 89)]
    opened = [MessageFact("email", "opened", NOW - timedelta(days=3))]
    base = ProfileFacts("x", {"city": "Leeds", "total_spend": 250}, events=recent, messages=opened)
    spend = {"city": "Leeds", "total_spend": 250}
    people = {
        "match": base,
        "york": replace(base, traits={"city": "York", "total_spend": 201.5}),
        "staff": replace(base, segments=frozenset({"Staff"})),
        "two_orders": replace(base, events=recent[:2]),
        "old_order": replace(
            base, events=[*recent[:2], EventFact("order_completed", NOW - timedelta(days=90))]
        ),
        "spent_200": replace(base, traits={**spend, "total_spend": 200}),
        "string_spend": replace(base, traits={**spend, "total_spend": "250"}),
        "leeds_lower": replace(base, traits={**spend, "city": "leeds"}),
        "no_open": replace(base, messages=[MessageFact("sms", "opened", NOW)]),
        "open_old": replace(base, messages=[MessageFact("email", "opened", NOW - timedelta(days=31))]),
    }
    with runtime.engine.connect() as conn:
        segment_ids = sqldata.make_segments(conn, workspace_id, ["Staff"])
        stored = sqldata.load(
            conn, workspace_id, list(people.values()), catalog=CATALOG, segment_ids=segment_ids, first_id=500
        )
        by_name = dict(zip(people, stored, strict=True))
        got = sqldata.matching_ids(conn, tree, _scope(workspace_id, segment_ids))
        conn.rollback()
    assert got == {int(by_name["match"].profile_id), int(by_name["york"].profile_id)}
    assert got == {int(f.profile_id) for f in stored if evaluate(tree, f, NOW, catalog=CATALOG)}


def test_buckets_split_like_the_evaluator(runtime: Runtime) -> None:
    workspace_id = make_tenant(runtime, "acme").workspace_id
    facts = [ProfileFacts("x") for _ in range(200)]
    with runtime.engine.connect() as conn:
        stored = sqldata.load(conn, workspace_id, facts, catalog=CATALOG, segment_ids={}, first_id=1)
        cases: list[tuple[BucketOp, float]] = [("<", 30.0), (">=", 30.0), ("<=", 0.0), ("<", 100.0)]
        for op, percent in cases:
            tree = RandomBucket(op, percent, "spring")
            expected = {int(f.profile_id) for f in stored if evaluate(tree, f, NOW)}
            assert sqldata.matching_ids(conn, tree, _scope(workspace_id, {})) == expected
        tree2 = Compare("city", "=", "x")
        assert sqldata.matching_ids(conn, tree2, _scope(workspace_id, {})) == set()
        conn.rollback()


def test_scores_read_from_their_table_in_every_position(runtime: Runtime) -> None:
    """A score is read from its own table through a subquery on the profile, correlated even where it sits
    in a table function's argument (a list value's elements: ``in``), which once ran uncorrelated on
    PostgreSQL (found by the property test above)."""
    workspace_id = make_tenant(runtime, "acme").workspace_id
    people = [
        ProfileFacts("x", {"churn_danger": [0.0, 0.5], "rfm_segment": "lost"}),
        ProfileFacts("y", {"churn_danger": 0.0, "rfm_segment": "champions"}),
        ProfileFacts("z", {"city": "Leeds"}),  # no scores row at all
    ]
    texts = ("churn_danger in (0)", 'rfm_segment = "lost"', "rfm_segment is not set", "churn_danger >= 0")
    with runtime.engine.connect() as conn:
        stored = sqldata.load(conn, workspace_id, people, catalog=CATALOG, segment_ids={}, first_id=700)
        for text in texts:
            tree = parse(text, catalog=CATALOG)
            expected = {int(f.profile_id) for f in stored if evaluate(tree, f, NOW, catalog=CATALOG)}
            assert expected, text  # each condition holds for someone
            assert sqldata.matching_ids(conn, tree, _scope(workspace_id, {})) == expected, text
        conn.rollback()
