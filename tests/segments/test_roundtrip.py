"""Property tests: text and JSON both round-trip every AST, and the printed text is canonical."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapport.segments import SegmentError, from_json, parse, to_json, to_text
from rapport.segments.ast import Node
from tests.segments.strategies import segments

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _strict(node: Node) -> str:
    """A spelling of the tree that also tells 1 from 1.0 from true (dataclass == does not)."""
    return json.dumps(to_json(node), sort_keys=True)


@_SETTINGS
@given(segments)
def test_text_and_json_round_trip_every_tree_and_printing_is_canonical(node: Node) -> None:
    text = to_text(node)
    again = parse(text)
    assert again == node, text
    assert _strict(again) == _strict(node), text
    assert to_text(again) == text

    document = json.loads(json.dumps(to_json(node)))
    assert document["version"] == 1
    decoded = from_json(document)
    assert decoded == node
    assert _strict(decoded) == _strict(node)


_WORDS = st.sampled_from(
    [
        "did",
        "not",
        "and",
        "or",
        "(",
        ")",
        "in",
        "segment",
        "at",
        "least",
        "3",
        "times",
        "last",
        "days",
        "where",
        "x",
        "=",
        '"a"',
        "2025-01-01",
        "within",
        "km",
        "of",
        "random",
        "bucket",
        "<",
        "%",
        "email.opened",
        "is",
        "set",
        ",",
        "first",
        "before",
        "between",
        "ago",
        "more",
        "than",
        "subscribed",
        "to",
        "sms",
        "topic",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_WORDS, max_size=12).map(" ".join)))
def test_any_text_either_parses_to_a_printable_tree_or_raises_a_positioned_segment_error(text: str) -> None:
    try:
        node = parse(text)
    except SegmentError as error:
        assert error.line is not None and error.column is not None
        assert 1 <= error.line <= text.count("\n") + 1
        assert error.details["line"] == error.line
        return
    assert parse(to_text(node)) == node
