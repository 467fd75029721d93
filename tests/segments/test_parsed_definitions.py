"""The real-time path decodes each segment definition once (``realtime.parsed_definition``), and never serves a
tree for an AST other than the one stored."""

from __future__ import annotations

from rapport.models import Segment
from rapport.segments import parse, realtime
from rapport.segments.catalog import Catalog
from rapport.segments.codec import to_json

CATALOG = Catalog(traits={"city": "string"}, computed={"total_spend": "number"}, events={"order_completed"})


def _segment(source: str, *, id: int = 7, version: int = 1) -> Segment:
    return Segment(id=id, version=version, name=f"S{id}", ast=to_json(parse(source, catalog=CATALOG)))


def test_one_definition_is_decoded_once() -> None:
    first = realtime.parsed_definition(_segment('city = "Leeds"'))
    again = realtime.parsed_definition(_segment('city = "Leeds"'))  # a fresh row of the same definition
    assert again[0] is first[0] and again[1] is first[1]
    assert first[0] == parse('city = "Leeds"', catalog=CATALOG)
    assert first[1].fields == {"city"}


def test_another_ast_under_the_same_id_and_version_is_decoded_afresh() -> None:
    # e.g. another database's segment 7 at version 1, or a definition written without a new version
    leeds = realtime.parsed_definition(_segment('city = "Leeds"', id=8))
    spenders = realtime.parsed_definition(_segment("total_spend > 100", id=8))
    assert spenders[0] == parse("total_spend > 100", catalog=CATALOG)
    assert spenders[1].fields == {"total_spend"} and leeds[1].fields == {"city"}
    # and the first definition, asked again, is not answered with the second's tree
    assert realtime.parsed_definition(_segment('city = "Leeds"', id=8))[0] == leeds[0]


def test_dependency_order_uses_the_stored_definitions() -> None:
    base = _segment('city = "Leeds"', id=9)
    base.name = "Leeds"
    named = Segment(
        id=10, version=1, name="Big in Leeds", ast=to_json(parse('in segment "Leeds"', catalog=CATALOG))
    )
    ordered = realtime.in_dependency_order([named, base])
    assert [s.name for s, _tree, _deps in ordered] == ["Leeds", "Big in Leeds"]
    assert ordered[1][2].segments == {"Leeds"}
