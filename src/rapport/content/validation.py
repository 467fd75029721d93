"""Validation on save: every part and block of a template, each issue placed in its part with line/column.

Errors refuse the save: Liquid syntax errors, unknown filters and snippets, a block placed but not
defined, a condition the segment language rejects (its line/column are within the condition), a required
part left blank. Warnings do not: unknown variables (with a suggestion), a block defined but never placed.
Parts are named ``subject``, ``html``, … and ``blocks.NAME.variants.N.condition`` / ``.variants.N`` /
``.default`` inside blocks (N counts from 1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapport.content.conditions import parse_condition
from rapport.content.parts import spec_of
from rapport.content.rendering import BLOCK_REF
from rapport.personalize import TemplateEngine, known_variable_paths, validate_template
from rapport.personalize.validate import line_col
from rapport.segments.catalog import Catalog
from rapport.segments.errors import SegmentError

_LIQUID = re.compile(r"\{\{|\{%")


@dataclass(frozen=True, slots=True)
class ContentIssue:
    """One problem of a template, placed in a part."""

    part: str
    severity: str
    code: str
    message: str
    line: int | None = None
    column: int | None = None
    suggestion: str | None = None


@dataclass(frozen=True, slots=True)
class ContentReport:
    """The errors and warnings of one template (or snippet)."""

    errors: tuple[ContentIssue, ...]
    warnings: tuple[ContentIssue, ...]

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors


def known_paths(catalog: Catalog | None) -> list[str]:
    """The variables a workspace's templates may read, narrowed to its known traits when it has data."""
    if catalog is None or catalog.traits is None:
        return known_variable_paths()
    return known_variable_paths(traits=catalog.traits)


class _Collector:
    def __init__(self, engine: TemplateEngine, known: list[str], snippets: Mapping[str, str]) -> None:
        self.engine = engine
        self.known = known
        self.snippets = snippets
        self.errors: list[ContentIssue] = []
        self.warnings: list[ContentIssue] = []

    def add(self, issue: ContentIssue) -> None:
        (self.errors if issue.severity == "error" else self.warnings).append(issue)

    def liquid(self, part: str, source: str) -> None:
        if not source:
            return
        report = validate_template(self.engine, source, known=self.known, snippets=self.snippets)
        for issue in (*report.errors, *report.warnings):
            self.add(
                ContentIssue(
                    part,
                    issue.severity,
                    issue.code,
                    issue.message,
                    issue.line,
                    issue.column,
                    issue.suggestion,
                )
            )

    def report(self) -> ContentReport:
        return ContentReport(tuple(self.errors), tuple(self.warnings))


def validate_content(
    engine: TemplateEngine,
    *,
    channel: str,
    content: Mapping[str, str],
    blocks: Sequence[Mapping[str, Any]],
    snippets: Mapping[str, str],
    catalog: Catalog | None,
) -> ContentReport:
    """Check a template's parts and blocks as a marketer saves them (see the module docstring)."""
    spec = spec_of(channel)
    check = _Collector(engine, known_paths(catalog), snippets)
    for name in spec.required:
        if not str(content.get(name) or "").strip():
            check.add(ContentIssue(name, "error", "required", f"a {channel} template needs a {name}"))
    if spec.one_of and not any(str(content.get(name) or "").strip() for name in spec.one_of):
        wanted = " or ".join(spec.one_of)
        check.add(ContentIssue(spec.one_of[0], "error", "required", f"a {channel} template needs {wanted}"))
    for name in spec.parts:
        check.liquid(name, str(content.get(name) or ""))
    if channel == "webhook":
        url = str(content.get("url") or "").strip()
        if url and not _LIQUID.match(url) and not url.lower().startswith(("https://", "http://")):
            check.add(
                ContentIssue("url", "error", "invalid_url", "a webhook URL starts with https:// or http://")
            )

    defined = _check_blocks(check, blocks, catalog)
    placed: set[str] = set()
    for name in spec.parts:
        source = str(content.get(name) or "")
        for found in BLOCK_REF.finditer(source):
            block = found.group(1)
            placed.add(block)
            if block not in defined:
                line, column = line_col(source, found.start())
                check.add(
                    ContentIssue(
                        name, "error", "unknown_block", f"no block named '{block}' is defined", line, column
                    )
                )
    for block in defined:
        if block not in placed:
            check.add(
                ContentIssue(
                    f"blocks.{block}",
                    "warning",
                    "unused_block",
                    f"block '{block}' is not placed in any part: add {{{{ blocks.{block} }}}}",
                )
            )
    return check.report()


def _check_blocks(
    check: _Collector, blocks: Sequence[Mapping[str, Any]], catalog: Catalog | None
) -> list[str]:
    defined: list[str] = []
    for raw in blocks:
        name = str(raw.get("name") or "")
        if name in defined:
            check.add(
                ContentIssue(f"blocks.{name}", "error", "duplicate_block", f"two blocks are called '{name}'")
            )
            continue
        defined.append(name)
        for index, variant in enumerate(raw.get("variants") or [], start=1):
            where = f"blocks.{name}.variants.{index}"
            condition = str(variant.get("condition") or "")
            if not condition.strip():
                check.add(
                    ContentIssue(f"{where}.condition", "error", "required", "a variant needs a condition")
                )
            else:
                try:
                    parse_condition(condition, catalog=catalog)
                except SegmentError as err:
                    check.add(
                        ContentIssue(
                            f"{where}.condition",
                            "error",
                            "invalid_condition",
                            err.reason,
                            err.line,
                            err.column,
                            err.suggestion,
                        )
                    )
            check.liquid(where, str(variant.get("source") or ""))
        check.liquid(f"blocks.{name}.default", str(raw.get("default") or ""))
    return defined


def validate_snippet(
    engine: TemplateEngine, *, name: str, source: str, snippets: Mapping[str, str], catalog: Catalog | None
) -> ContentReport:
    """Check a snippet's source; it may render other snippets of the workspace, not itself."""
    others = {other: text for other, text in snippets.items() if other != name}
    check = _Collector(engine, known_paths(catalog), others)
    check.liquid("source", source)
    return check.report()


def snippet_names_used(sources: Iterable[str]) -> set[str]:
    """Return the snippet names ``{% render %}``/``{% include %}`` tags in ``sources`` refer to."""
    found: set[str] = set()
    for source in sources:
        found.update(match.group("name") for match in SNIPPET_REF.finditer(source))
    return found


SNIPPET_REF = re.compile(r"\{%-?\s*(?:render|include)\s+(['\"])(?P<name>[^'\"]+)\1")
