"""The examples in docs/segment-language.md parse (and the JSON example is the reference segment)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rapport.segments import from_json, parse, to_text

DOC = (Path(__file__).parents[2] / "docs" / "segment-language.md").read_text()


def _section(title: str) -> str:
    start = DOC.index(f"### {title}\n")
    match = re.compile(r"\n##+ ").search(DOC, start + 1)
    return DOC[start : match.start() if match else None]


def _examples() -> list[str]:
    found = []
    for title in ("Events", "First and last time", "Message engagement", "Channel subscriptions"):
        block = re.search(r"```text\n(.*?)```", _section(title), re.S)
        assert block is not None, title
        found += [line for line in block.group(1).splitlines() if line.strip()]
    for title in ("Traits, computed traits and scores", "Date-relative traits"):
        for row in re.findall(r"^\| `([^|]+?)`(?: / `[^|]+`)?(?:, [^|]*)? \|", _section(title), re.M):
            found.append(row)
    for title in ("Other segments", "Location", "Random buckets"):
        found += re.findall(
            r"`((?:not in segment|in segment|within \d|random bucket)[^`]*)`", _section(title)
        )
    return found


EXAMPLES = _examples()


def test_the_examples_were_found() -> None:
    assert len(EXAMPLES) >= 35


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_documented_example_parses_and_round_trips(text: str) -> None:
    tree = parse(text.replace("\\|", "|"))
    assert parse(to_text(tree)) == tree


def test_the_reference_segment_reads_as_documented_and_matches_the_json_example() -> None:
    reference = re.search(r"```text\n(purchased.*?)```", DOC, re.S)
    document = re.search(r"```json\n(.*?)```", DOC, re.S)
    assert reference is not None and document is not None
    assert from_json(json.loads(document.group(1))) == parse(reference.group(1))
