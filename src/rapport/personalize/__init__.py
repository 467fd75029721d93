"""Personalisation: sandboxed Liquid rendering with limits, filters, validation, context and content blocks.

The public surface (other domains import from here):

    engine = TemplateEngine(limits=RenderLimits(), snippets={...})   # one per process
    ctx = build_context(ContextInputs(now=..., profile=..., recipient=Recipient(...), ...))
    engine.render(source, ctx, html=True).text        # or raises RenderFailed(reason, line) (R22)
    render_parts(engine, {"subject": ..., "html": ...}, ctx)   # a whole message, one budget, text part made
    validate_template(engine, source, known=known_variable_paths(traits=...))   # on save
    html_to_text(html)                                  # the text part when none was written
    render_blocks(engine, blocks, ctx, predicate=...)   # rule-based variants, first match wins
"""

from rapport.personalize.blocks import (
    BlocksResult,
    Choice,
    Predicate,
    RuleBlock,
    StaticBlock,
    Variant,
    choose_variant,
    render_blocks,
    render_layout,
)
from rapport.personalize.context import (
    KNOWN_VARIABLES,
    ContextInputs,
    Recipient,
    build_context,
    known_variable_paths,
)
from rapport.personalize.engine import (
    CompiledTemplate,
    RenderFailed,
    RenderResult,
    TemplateEngine,
    render_parts,
    single_line,
)
from rapport.personalize.limits import RenderBudget, RenderLimits
from rapport.personalize.text import html_to_text
from rapport.personalize.validate import TemplateIssue, ValidationReport, validate_template

__all__ = [
    "KNOWN_VARIABLES",
    "BlocksResult",
    "Choice",
    "CompiledTemplate",
    "ContextInputs",
    "Predicate",
    "Recipient",
    "RenderBudget",
    "RenderFailed",
    "RenderLimits",
    "RenderResult",
    "RuleBlock",
    "StaticBlock",
    "TemplateEngine",
    "TemplateIssue",
    "ValidationReport",
    "Variant",
    "build_context",
    "choose_variant",
    "html_to_text",
    "known_variable_paths",
    "render_blocks",
    "render_layout",
    "render_parts",
    "single_line",
    "validate_template",
]
