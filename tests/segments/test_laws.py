"""Property tests of the evaluator on catalogue-typed segments and random profiles: laws it must obey."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapport.segments import ProfileFacts, evaluate, from_json, parse, to_json, to_text
from rapport.segments.ast import And, Count, Did, Engagement, Node, Not, Or, RandomBucket
from tests.segments.typed import CATALOG, NOW, profiles, typed_conditions, typed_segments

_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _holds(node: Node, profile: ProfileFacts) -> bool:
    return evaluate(node, profile, NOW, catalog=CATALOG, seed="law")


@_SETTINGS
@given(typed_segments, st.lists(typed_conditions, min_size=2, max_size=3), profiles())
def test_answers_survive_text_and_json_and_obey_boolean_algebra(
    node: Node, items: list[Node], profile: ProfileFacts
) -> None:
    assert parse(to_text(node, catalog=CATALOG), catalog=CATALOG) == node
    answer = _holds(node, profile)
    assert _holds(parse(to_text(node)), profile) is answer
    assert _holds(from_json(to_json(node)), profile) is answer
    assert _holds(Not(node), profile) is (not answer)

    answers = [_holds(item, profile) for item in items]
    assert _holds(And(tuple(items)), profile) is all(answers)
    assert _holds(Or(tuple(items)), profile) is any(answers)
    negated = tuple(Not(item) for item in items)
    assert _holds(Not(And(tuple(items))), profile) is _holds(Or(negated), profile)  # De Morgan


def _with_count(node: Did | Engagement, op: Any, n: int) -> Node:
    count = Count(op, n)
    if isinstance(node, Did):
        return Did(node.event, node.where, count, node.window)
    return Engagement(node.action, node.channel, node.campaign, count, node.window)


@_SETTINGS
@given(typed_conditions, profiles(), st.integers(0, 3), st.randoms(use_true_random=False), st.floats(0, 100))
def test_counts_order_and_buckets(
    node: Node, profile: ProfileFacts, n: int, rng: random.Random, percent: float
) -> None:
    events, messages = list(profile.events), list(profile.messages)
    rng.shuffle(events)
    rng.shuffle(messages)
    fields = {name: getattr(profile, name) for name in profile.__slots__}
    shuffled = ProfileFacts(**{**fields, "events": events, "messages": messages})
    assert _holds(node, shuffled) is _holds(node, profile)

    if isinstance(node, Did | Engagement):
        exactly = _holds(_with_count(node, "exactly", n), profile)
        at_least = _holds(_with_count(node, "at least", n), profile)
        at_most = _holds(_with_count(node, "at most", n), profile)
        assert exactly is (at_least and at_most)
        assert at_least or at_most

    assert _holds(RandomBucket("<", percent), profile) is not _holds(RandomBucket(">=", percent), profile)
