"""The template engine: one sandboxed Liquid environment, a compile cache and ``render`` with limits.

Build one ``TemplateEngine`` per process (the composition root does) and share it; it is thread-safe.

    engine = TemplateEngine(snippets={"footer": "<p>{{ unsubscribe_url }}</p>"})
    result = engine.render("Hi {{ first_name | default: 'there' }}{% render 'footer' %}", context)
    result.text        # the rendered message
    # a bad or runaway template raises RenderFailed(reason, line) for that message only

Parsed templates are cached by their source text (the string is the key, so equal sources share one
parse); snippets are cached by (name, source), so a workspace's snippets can be passed per render.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from time import perf_counter
from typing import Any

from liquid import BoundTemplate, Environment, RenderContext
from liquid.exceptions import (
    BlockNestingError,
    ContextDepthError,
    LiquidError,
    LiquidSyntaxError,
    LocalNamespaceLimitError,
    LoopIterationLimitError,
    OutputStreamLimitError,
    TemplateNotFoundError,
    UnknownFilterError,
)
from liquid.loader import BaseLoader, TemplateSource

from rapport.errors import Unprocessable
from rapport.personalize import filters as rapport_filters
from rapport.personalize.compiled import compile_template
from rapport.personalize.limits import (
    GuardedContext,
    GuardedTemplate,
    OutputBuffer,
    RenderBudget,
    RenderLimits,
    RenderStalledError,
    RenderTimeLimitError,
    ValueSizeLimitError,
    apply_limits,
    thread_cpu_seconds,
)
from rapport.personalize.text import fit_underlines, html_to_text, text_template_from_html, tidy_text

#: RenderFailed.reason of a render that hit the hard wall-clock cap with CPU budget left (a busy machine).
STALLED = "stalled"
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (RenderStalledError, STALLED),
    (RenderTimeLimitError, "time_limit"),
    (LoopIterationLimitError, "loop_limit"),
    (OutputStreamLimitError, "output_limit"),
    (ValueSizeLimitError, "output_limit"),
    (LocalNamespaceLimitError, "memory_limit"),
    (ContextDepthError, "depth_limit"),
    (BlockNestingError, "depth_limit"),
    (RecursionError, "depth_limit"),
    (MemoryError, "memory_limit"),
    (LiquidSyntaxError, "syntax_error"),
    (TemplateNotFoundError, "snippet_not_found"),
    (UnknownFilterError, "unknown_filter"),
    (LiquidError, "template_error"),
)


class RenderFailed(Unprocessable):
    """One message's template could not be rendered; ``reason`` is a stable code, ``line`` 1-based."""

    code = "render_failed"

    def __init__(self, reason: str, message: str, *, line: int | None = None, column: int | None = None):
        super().__init__(message, details={"reason": reason, "line": line, "column": column})
        self.reason = reason
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A parsed template bound to the engine that compiled it."""

    source: str
    bound: BoundTemplate
    html: bool


@dataclass(frozen=True, slots=True)
class RenderResult:
    """The rendered text and how long it took."""

    text: str
    elapsed_ms: float


def error_position(err: BaseException) -> tuple[int | None, int | None]:
    """Return the 1-based (line, column) a python-liquid error points at, or (None, None)."""
    if isinstance(err, LiquidError):
        try:
            ctx = err.context()
        except ValueError:
            ctx = None
        if ctx is not None:
            return ctx[0], ctx[1] + 1
    return None, None


def failure_from(err: BaseException) -> RenderFailed:
    """Translate any exception raised while compiling or rendering into ``RenderFailed``."""
    if isinstance(err, RenderFailed):
        return err
    reason = next((code for kind, code in _REASONS if isinstance(err, kind)), "error")
    line, column = error_position(err)
    if isinstance(err, LiquidError):
        message = str(err.message)
    elif isinstance(err, RecursionError):
        message = "templates nested too deeply"
    else:
        message = f"{type(err).__name__}: {err}"
    return RenderFailed(reason, message, line=line, column=column)


def _context(
    bound: BoundTemplate, data: Mapping[str, Any], budget: RenderBudget, snippets: Mapping[str, str] | None
) -> GuardedContext:
    """The render context python-liquid would make for ``bound`` (its budget and snippets attached)."""
    ctx = GuardedContext(bound, globals=bound.make_globals(data))
    ctx.budget = budget
    ctx.snippets = snippets
    return ctx


def _fast_context(
    bound: BoundTemplate, data: Mapping[str, Any], budget: RenderBudget, snippets: Mapping[str, str] | None
) -> GuardedContext:
    """The context as ``render_with_context`` has it while rendering (the partial namespace pushed)."""
    ctx = _context(bound, data, budget, snippets)
    ctx.scope.push(bound.make_partial_namespace(False, {}))
    return ctx


class _SnippetLoader(BaseLoader):
    """Loads ``{% render 'name' %}`` snippets from the render's snippets or the engine's defaults."""

    def __init__(self, engine: TemplateEngine) -> None:
        super().__init__()
        self._engine = engine

    def _lookup(self, name: str, context: RenderContext | None) -> str:
        snippets = context.snippets if isinstance(context, GuardedContext) else None
        if snippets is None:
            snippets = self._engine.snippets
        try:
            return snippets[name]
        except KeyError as err:
            raise TemplateNotFoundError(name) from err

    def get_source(
        self, env: Environment, template_name: str, *, context: RenderContext | None = None, **kwargs: object
    ) -> TemplateSource:
        """Return the snippet's source text."""
        return TemplateSource(self._lookup(template_name, context), template_name, None)

    def load(
        self,
        env: Environment,
        name: str,
        *,
        globals: Mapping[str, object] | None = None,  # python-liquid's name
        context: RenderContext | None = None,
        **kwargs: object,
    ) -> BoundTemplate:
        """Return the parsed snippet, from the engine's cache when its source is unchanged."""
        source = self._lookup(name, context)
        return self._engine._parse_cached(env, source, name)


class TemplateEngine:
    """Compiles and renders marketer templates in a sandboxed Liquid environment with limits."""

    def __init__(
        self,
        *,
        limits: RenderLimits | None = None,
        snippets: Mapping[str, str] | None = None,
        cache_size: int = 1024,
        compiled: bool = True,
    ) -> None:
        self.limits = limits or RenderLimits()
        self.compiled = compiled
        self.snippets: Mapping[str, str] = dict(snippets or {})
        self._cache: dict[tuple[bool, str, str], BoundTemplate] = {}
        self._cache_size = cache_size
        self._lock = threading.Lock()
        rapport_filters.warm_locales([rapport_filters.DEFAULT_LOCALE])
        loader = _SnippetLoader(self)
        self._text_env = self._build_env(loader, autoescape=False)
        self._html_env = self._build_env(loader, autoescape=True)

    def _build_env(self, loader: BaseLoader, *, autoescape: bool) -> Environment:
        env = Environment(loader=loader, autoescape=autoescape, strict_filters=True)
        env.template_class = GuardedTemplate
        rapport_filters.register(env)
        apply_limits(env, self.limits)
        return env

    @property
    def filter_names(self) -> frozenset[str]:
        """Names of every filter templates may use."""
        return frozenset(self._text_env.filters)

    def _parse_cached(
        self, env: Environment, source: str, name: str, budget: RenderBudget | None = None
    ) -> BoundTemplate:
        key = (env is self._html_env, name, source)
        # A hit reads without the lock (a dict lookup is atomic in CPython) and does not reorder: the
        # cache evicts the oldest entry first, which for templates shared by whole campaigns is as good
        # as least-recently-used and keeps the hot path to one lookup.
        bound = self._cache.get(key)
        if bound is not None:
            return bound
        if len(source.encode("utf-8")) > self.limits.max_source_bytes:
            raise RenderFailed(
                "source_too_large", f"template is larger than {self.limits.max_source_bytes} bytes"
            )
        started = thread_cpu_seconds() if budget is not None else 0.0
        bound = env.from_string(source, name=name)
        if self.compiled and isinstance(bound, GuardedTemplate):
            bound.fast = compile_template(bound)
        if budget is not None:
            # parsing and compiling happen once per template, not per message: a shared budget (the parts
            # of one message) is not charged for them, as it is not for loading locale data
            budget.credit(thread_cpu_seconds() - started)
        with self._lock:
            self._cache[key] = bound
            while len(self._cache) > self._cache_size:
                del self._cache[next(iter(self._cache))]
        return bound

    def new_budget(self) -> RenderBudget:
        """Start the time budget of one render (see ``RenderBudget``)."""
        return RenderBudget(self.limits.max_render_ms / 1000, hard_factor=self.limits.hard_factor)

    def compile(self, source: str, *, html: bool = False) -> CompiledTemplate:
        """Parse ``source`` (cached); a syntax error raises ``RenderFailed`` with reason ``syntax_error``."""
        env = self._html_env if html else self._text_env
        try:
            bound = self._parse_cached(env, source, "")
        except Exception as err:  # any parse failure fails this template only
            raise failure_from(err) from err
        return CompiledTemplate(source=source, bound=bound, html=html)

    def render(
        self,
        template: str | CompiledTemplate,
        context: Mapping[str, Any],
        *,
        html: bool = False,
        snippets: Mapping[str, str] | None = None,
        budget: RenderBudget | None = None,
    ) -> RenderResult:
        """Render ``template`` with ``context`` within the limits, or raise ``RenderFailed``.

        ``html`` escapes variables (ignored for an already compiled template, which keeps its own mode);
        ``snippets`` overrides the engine's snippets for this render; ``budget`` replaces the engine's time
        budget (pass one ``new_budget()`` to several renders to share it between the parts of a message).
        """
        started = perf_counter()
        if isinstance(template, CompiledTemplate):
            bound = template.bound
        else:
            env = self._html_env if html else self._text_env
            try:
                bound = self._parse_cached(env, template, "", budget)
            except Exception as err:  # any parse failure fails this template only
                raise failure_from(err) from err
        budget = budget or self.new_budget()
        fast = getattr(bound, "fast", None)
        try:
            if fast is not None and type(context) is dict:
                # compiled.py: the same output, or the same failure, as the tree walker below
                text = fast(
                    context,
                    self.limits.max_output_chars,
                    budget,
                    partial(_fast_context, bound, context, budget, snippets),
                )
            else:
                ctx = _context(bound, context, budget, snippets)
                buffer = OutputBuffer(limit=self.limits.max_output_chars)
                bound.render_with_context(ctx, buffer)
                text = buffer.getvalue()
        except Exception as err:  # R22: a bad template fails this message only
            raise failure_from(err) from err
        try:
            # A single slow step (one huge filter call) can overrun between checks; still refuse it.
            budget.check()
        except RenderTimeLimitError as err:
            raise failure_from(err) from err
        return RenderResult(text=text, elapsed_ms=(perf_counter() - started) * 1000)


HTML_PARTS = frozenset({"html"})
SINGLE_LINE_PARTS = frozenset({"subject", "preheader", "title", "from_name"})
_SNIPPET_TAG = re.compile(r"(?:\{%-?|\n)\s*(?:render|include)\b")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def single_line(text: str) -> str:
    """Collapse control characters (CR, LF, tab, ...) and runs of spaces to one space: safe in a header."""
    return " ".join(_CONTROL.sub(" ", text).split())


def render_parts(
    engine: TemplateEngine,
    parts: Mapping[str, str],
    context: Mapping[str, Any],
    *,
    snippets: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Render every part of one message (subject, preheader, html, text, body, ...) under one budget.

    ``html`` is rendered with escaping; ``subject``, ``preheader``, ``title`` and ``from_name`` come out
    on one line, so personal data cannot add a header (R23); an email with ``html`` and no (or a blank)
    ``text`` gets one generated from the HTML. A failing part raises ``RenderFailed`` naming the part.
    """
    budget = engine.new_budget()
    rendered: dict[str, str] = {}
    for name, source in parts.items():
        try:
            text = engine.render(
                source, context, html=name in HTML_PARTS, snippets=snippets, budget=budget
            ).text
        except RenderFailed as failure:
            raise RenderFailed(
                failure.reason, f"{name}: {failure.message}", line=failure.line, column=failure.column
            ) from failure
        rendered[name] = single_line(text) if name in SINGLE_LINE_PARTS else text
    if "html" in rendered and not rendered.get("text", "").strip():
        rendered["text"] = generated_text(engine, parts["html"], rendered["html"], context, snippets, budget)
    return rendered


@lru_cache(maxsize=512)
def _text_template(html_source: str) -> tuple[str, bool]:
    return text_template_from_html(html_source), bool(_SNIPPET_TAG.search(html_source))


def generated_text(
    engine: TemplateEngine,
    html_source: str,
    html: str,
    context: Mapping[str, Any],
    snippets: Mapping[str, str] | None,
    budget: RenderBudget,
) -> str:
    """Return the text part of an email written only in HTML: the text template derived (once, cached)
    from the HTML template ``html_source``, rendered with ``context``; else ``html_to_text`` of the
    rendered ``html``. Raises ``RenderFailed`` only when the time budget is spent."""
    text_source, uses_snippets = _text_template(html_source)
    text_snippets = None
    if uses_snippets:
        available = engine.snippets if snippets is None else snippets
        text_snippets = {name: _text_template(source)[0] for name, source in available.items()}
    try:
        text = engine.render(text_source, context, snippets=text_snippets, budget=budget).text
    except RenderFailed as failure:
        if failure.reason in ("time_limit", STALLED):
            raise RenderFailed(failure.reason, f"text: {failure.message}") from failure
        return html_to_text(html)  # the derived template did not hold together: convert the result
    return fit_underlines(tidy_text(text))
