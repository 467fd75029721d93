"""The segment language: one AST, a readable text form, a JSON form, a catalogue check and an evaluator.

Public surface::

    node = parse('purchased at least 3 times in last 90 days and not in segment "Staff"', catalog=catalog)
    text = to_text(node)                 # canonical text; parse(to_text(node)) == node
    document = to_json(node)             # {"version": 1, "root": {...}}; from_json(document) == node
    evaluate(node, profile_facts, now)   # the plain-Python oracle

Every failure is a ``SegmentError`` (a ``ValidationFailed``, so HTTP 400) with line, column, what was
expected and a suggestion. The language reference is docs/segment-language.md.
"""

from rapport.segments.ast import Node, walk
from rapport.segments.catalog import Catalog, FieldInfo, check
from rapport.segments.codec import from_json, to_json
from rapport.segments.dependencies import Dependencies, check_cycles, dependencies, referenced_segments
from rapport.segments.errors import SegmentError
from rapport.segments.evaluator import EventFact, MessageFact, ProfileFacts, bucket, evaluate
from rapport.segments.parser import parse
from rapport.segments.printer import to_text

__all__ = [
    "Catalog",
    "Dependencies",
    "EventFact",
    "FieldInfo",
    "MessageFact",
    "Node",
    "ProfileFacts",
    "SegmentError",
    "bucket",
    "check",
    "check_cycles",
    "dependencies",
    "evaluate",
    "from_json",
    "parse",
    "referenced_segments",
    "to_json",
    "to_text",
    "walk",
]
