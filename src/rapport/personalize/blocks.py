"""Content blocks with rules: a block chooses among variants by condition, first match wins, else default.

Conditions are opaque here (segment-language text or AST); the caller injects the ``predicate`` that
evaluates one against the render context, so this module does not depend on the segments package.

Two ways to use them, both sharing one time budget per message:

- a template is a list of blocks, each static Liquid or a ``RuleBlock``: ``render_blocks``;
- a layout template places named blocks with ``{{ blocks.hero }}``: ``render_layout``.

    hero = RuleBlock("hero", variants=(Variant("scores.rfm.segment = 'champion'", "<h1>VIP</h1>"),),
                     default="<h1>Hello</h1>")
    result = render_blocks(engine, ["<html>", hero, "</html>"], context, predicate=segments_predicate)
    result.choices  # (Choice(block="hero", variant="1", index=0),) -- record it with the message
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from markupsafe import Markup

from rapport.personalize.engine import RenderFailed, TemplateEngine
from rapport.personalize.limits import RenderBudget

Predicate = Callable[[Any, Mapping[str, Any]], bool]
"""Evaluates one variant condition against the render context."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One alternative of a block: shown when ``condition`` holds (and no earlier variant's did)."""

    condition: Any
    source: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class RuleBlock:
    """A named block of variants tried in order, with the Liquid ``default`` when none matches."""

    name: str
    variants: tuple[Variant, ...] = ()
    default: str = ""


@dataclass(frozen=True, slots=True)
class StaticBlock:
    """Liquid shown to everyone."""

    source: str


Block = StaticBlock | RuleBlock | str


@dataclass(frozen=True, slots=True)
class Choice:
    """Which variant a rule block showed: ``index`` None and ``variant`` "default" for the default."""

    block: str
    variant: str
    index: int | None


@dataclass(frozen=True, slots=True)
class BlocksResult:
    """The rendered text and the variant chosen for every rule block, in order."""

    text: str
    choices: tuple[Choice, ...]
    elapsed_ms: float


def choose_variant(block: RuleBlock, context: Mapping[str, Any], predicate: Predicate) -> tuple[Choice, str]:
    """Return the first variant whose condition holds (else the default) and its Liquid source."""
    for index, variant in enumerate(block.variants):
        try:
            matched = predicate(variant.condition, context)
        except Exception as err:  # a broken condition fails this message only, like a broken template
            raise RenderFailed(
                "condition_error",
                f"block '{block.name}' variant {variant.name or index + 1}: {type(err).__name__}: {err}",
            ) from err
        if matched:
            return Choice(block.name, variant.name or str(index + 1), index), variant.source
    return Choice(block.name, "default", None), block.default


def _render_part(
    engine: TemplateEngine,
    source: str,
    context: Mapping[str, Any],
    *,
    where: str,
    html: bool,
    snippets: Mapping[str, str] | None,
    budget: RenderBudget,
) -> str:
    try:
        return engine.render(source, context, html=html, snippets=snippets, budget=budget).text
    except RenderFailed as failure:
        raise RenderFailed(
            failure.reason, f"{where}: {failure.message}", line=failure.line, column=failure.column
        ) from failure


def _check_size(engine: TemplateEngine, size: int) -> None:
    if size > engine.limits.max_output_chars:
        raise RenderFailed("output_limit", "output stream limit reached")


def render_blocks(
    engine: TemplateEngine,
    blocks: Sequence[Block],
    context: Mapping[str, Any],
    *,
    predicate: Predicate,
    html: bool = False,
    snippets: Mapping[str, str] | None = None,
) -> BlocksResult:
    """Render a template made of blocks, one shared time budget and output limit for all of them."""
    started = perf_counter()
    budget = engine.new_budget()
    parts: list[str] = []
    choices: list[Choice] = []
    size = 0
    for position, block in enumerate(blocks):
        if isinstance(block, RuleBlock):
            choice, source = choose_variant(block, context, predicate)
            choices.append(choice)
            where = f"block '{block.name}' variant {choice.variant}"
        else:
            source = block.source if isinstance(block, StaticBlock) else block
            where = f"block {position + 1}"
        text = _render_part(engine, source, context, where=where, html=html, snippets=snippets, budget=budget)
        size += len(text)
        _check_size(engine, size)
        parts.append(text)
    return BlocksResult("".join(parts), tuple(choices), (perf_counter() - started) * 1000)


def render_layout(
    engine: TemplateEngine,
    layout: str,
    blocks: Sequence[RuleBlock],
    context: Mapping[str, Any],
    *,
    predicate: Predicate,
    html: bool = False,
    snippets: Mapping[str, str] | None = None,
) -> BlocksResult:
    """Render each rule block, then ``layout`` with the results available as ``{{ blocks.<name> }}``."""
    started = perf_counter()
    budget = engine.new_budget()
    rendered: dict[str, str] = {}
    choices: list[Choice] = []
    size = 0
    for block in blocks:
        choice, source = choose_variant(block, context, predicate)
        choices.append(choice)
        text = _render_part(
            engine,
            source,
            context,
            where=f"block '{block.name}' variant {choice.variant}",
            html=html,
            snippets=snippets,
            budget=budget,
        )
        size += len(text)
        _check_size(engine, size)
        # Already rendered (and escaped where needed): the layout must not escape it again.
        rendered[block.name] = Markup(text) if html else text  # noqa: S704 (escaped by the block render)
    layout_context = {**context, "blocks": rendered}
    text = _render_part(
        engine, layout, layout_context, where="layout", html=html, snippets=snippets, budget=budget
    )
    return BlocksResult(text, tuple(choices), (perf_counter() - started) * 1000)
